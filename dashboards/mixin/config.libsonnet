// Everything an SRE tunes without editing the rules or the dashboard. Override in your own
// jsonnet:
//   (import 'mixin.libsonnet') + { _config+:: { clouddeviceSelector: 'job="phones", cluster="eu"' } }
{
  _config+:: {
    // Selects the series of the fleet: /metrics of an exporter of one account, or /probe of an
    // accounts file (clouddevice_*, and the per-account clouddevice_exporter_* counters).
    clouddeviceSelector: 'job="clouddevice"',
    // Selects the exporter's own /metrics (clouddevice_exporter_build_info, the accounts file's
    // reload state). One account: the same job as above. With an accounts file: the second job
    // of the README's scrape configuration, which scrapes /metrics.
    exporterSelector: 'job=~"clouddevice|clouddevice-exporter"',
    // The labels that tell targets apart: every per-target and per-region alert keeps them, so
    // two accounts (or two exporters) are never one alert.
    targetLabels: ['job', 'instance', 'account'],
    // The labels that tell deployments apart: CloudDeviceExporterMissing fires when one of them
    // has no target left of those it had in the last day.
    jobLabels: ['job'],

    // A region counts as frozen as a whole (one critical page, the per-phone alerts of the
    // region held back) when more than this share of its phones are frozen, and at least
    // regionFrozenMinCount of them. Per region: a clouddevice:frozen_max_ratio rule with a
    // region label (see the README of dashboards/).
    regionFrozenRatio: 0.2,
    regionFrozenMinCount: 10,
    // Too many stopped or shut down phones in a region: more than this share, and at least this
    // many. Once it fires it resolves only when the share falls below notRunningResolveRatio, so
    // a share that hovers at the threshold is one alert, not one an evaluation. Per region: the
    // clouddevice:not_running_max_ratio and clouddevice:not_running_resolve_ratio rules.
    notRunningRatio: 0.2,
    notRunningResolveRatio: 0.15,
    notRunningMinCount: 3,
    // A backup older than this is stale. Must be one of --collector.backup-age-buckets (the
    // exporter's default bounds: 86400, 259200, 604800, 2592000).
    backupStaleSeconds: 604800,
    // The fleet shrank: this share fewer phones than fleetShrinkWindow ago.
    fleetShrinkRatio: 0.1,
    fleetShrinkWindow: '1h',
    // Alert when the IAM token expires within this many seconds (renewal keeps failing).
    tokenExpirySeconds: 3600,
    // Scrapes failing: fewer than this share of the scrapes of 15 minutes read the whole list.
    scrapeSuccessRatio: 0.75,
    // Scrapes using more than this share of their timeout, on average over 15 minutes.
    scrapeNearTimeoutRatio: 0.8,
    // More than this share of the API requests failing with one code over 15 minutes.
    apiErrorRatio: 0.05,
    // With --collection.interval: the latest successful collection is older than this. A few
    // intervals (the default is five of 2m); one failed collection is not worth a page.
    collectionStaleSeconds: 600,

    // How long a condition lasts before it alerts.
    'for': {
      instanceFrozen: '10m',
      backupFailed: '15m',
      restoreFailed: '15m',
      regionFrozen: '5m',
      notRunning: '15m',
      // At least an hour, so that a new phone without a first backup yet stays quiet.
      backupStale: '1h',
      undocumentedStatus: '30m',
      fleetShrinking: '10m',
      exporterDown: '5m',
      exporterMissing: '10m',
      scrapeFailing: '5m',
      scrapeNearTimeout: '15m',
      apiErrors: '15m',
      tokenExpiring: '10m',
      configReloadFailed: '10m',
      collectionStale: '5m',
    },

    // How long an alert keeps firing once its condition no longer holds (keep_firing_for).
    // While an exporter is down or cannot read the list its series vanish, which would resolve
    // every alert it fed and start each `for:` again when it is back. 20m holds them through an
    // outage of 15 minutes plus a scrape and an evaluation interval of up to 2.5 minutes each; a
    // condition that really ends is reported resolved this much later. '0s' for none: the alerts
    // on `up` itself need none.
    keepFiringFor: {
      instanceFrozen: '20m',
      backupFailed: '20m',
      restoreFailed: '20m',
      regionFrozen: '20m',
      notRunning: '20m',
      backupStale: '30m',
      undocumentedStatus: '20m',
      fleetShrinking: '20m',
      exporterDown: '0s',
      exporterMissing: '0s',
      scrapeFailing: '20m',
      scrapeNearTimeout: '20m',
      apiErrors: '20m',
      tokenExpiring: '20m',
      configReloadFailed: '20m',
      collectionStale: '20m',
    },

    // Where each alert's runbook_url points: the base, then the alert's name in lower case.
    runbookURL: 'https://github.com/clouddevice-exporter/clouddevice_exporter/blob/main/dashboards/RUNBOOK.md#',

    dashboard: {
      uid: 'clouddevice-fleet',
      title: 'CloudDevice fleet',
      tags: ['clouddevice', 'koophone', 'huawei-cloud'],
      refresh: '1m',
      from: 'now-6h',
      // The most rows a per-phone table shows (topk): a table of 100,000 phones helps no one
      // and its query is the slowest on the dashboard.
      tableLimit: 100,
      // The most phones the name search lists.
      searchLimit: 20,
    },
  },
}
