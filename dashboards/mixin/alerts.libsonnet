// The recording rules and alerts. Every expression reads the fleet through
// _config.clouddeviceSelector (or the exporter's own metrics through exporterSelector), and every
// per-target or per-region alert keeps _config.targetLabels.
local util = import 'util.libsonnet';

{
  local c = $._config,
  local S = c.clouddeviceSelector,
  local E = c.exporterSelector,
  local by = util.by(c.targetLabels),
  local byRegion = util.by(c.targetLabels + ['region']),
  local jobs = std.join(', ', c.jobLabels),
  local runbook(name) = c.runbookURL + std.asciiLower(name),
  // `key` names the alert's `for:` and `keep_firing_for:` in _config; `when` and `names` say in
  // the alert table of dashboards/README.md (dashboards/mixin/alerts_table.py) when it fires and
  // what it names.
  local alert(name, key, severity, expr, summary, description, when, names) = {
    doc:: { when: when, names: names },
    alert: name,
    expr: expr,
    'for': c['for'][key],
    labels: { severity: severity },
    annotations: { summary: summary, description: description, runbook_url: runbook(name) },
  } + (if c.keepFiringFor[key] == '0s' then {} else { keep_firing_for: c.keepFiringFor[key] }),
  local phones(one, many) = util.count('cloud phone ' + one, 'cloud phones ' + many),
  local instances(one, many) = util.count('instance ' + one, 'instances ' + many),
  local staleDays = util.duration(c.backupStaleSeconds),

  prometheusRules+:: {
    groups+: [{
      name: 'clouddevice-recording',
      rules: [
        // Fleet totals for long ranges and other dashboards (the shipped dashboard reads the
        // raw series, so that its job, account and target choices apply).
        {
          record: 'region_status:clouddevice_instances_by_running_status:sum',
          expr: 'sum by (region, status) (clouddevice_instances_by_running_status{%s})' % S,
        },
        {
          record: 'region:clouddevice_instances:sum',
          expr: 'sum by (region) (clouddevice_instances{%s})' % S,
        },
        {
          record: 'sku:clouddevice_instances_assigned:ratio',
          expr: |||
            sum by (sku) (clouddevice_instances_by_assign_status{%(S)s, status="assigned"})
              / sum by (sku) (clouddevice_instances{%(S)s})
          ||| % { S: S },
        },
        {
          record: 'sku:clouddevice_instances_logged_in:ratio',
          expr: |||
            sum by (sku) (clouddevice_instances_by_login_status{%(S)s, status="logged_in"})
              / sum by (sku) (clouddevice_instances{%(S)s})
          ||| % { S: S },
        },
        // Shares per target and region, which the region alerts compare with their thresholds.
        {
          record: 'region:clouddevice_instances_frozen:ratio',
          expr: |||
            sum by (%(by)s) (clouddevice_instances_by_frozen_status{%(S)s, status="frozen"})
              / sum by (%(by)s) (clouddevice_instances{%(S)s})
          ||| % { S: S, by: byRegion },
        },
        {
          record: 'region:clouddevice_instances_not_running:ratio',
          expr: |||
            sum by (%(by)s) (clouddevice_instances_by_running_status{%(S)s, status=~"stopped|shut_down"})
              / sum by (%(by)s) (clouddevice_instances{%(S)s})
          ||| % { S: S, by: byRegion },
        },
        // Thresholds: the default from _config; a rule of the same name with a region label
        // overrides it for that region, e.g.
        //   - record: clouddevice:frozen_max_ratio
        //     expr: label_replace(vector(0.5), "region", "cn-north-4", "", "")
        { record: 'clouddevice:not_running_max_ratio', expr: 'vector(%g)' % c.notRunningRatio },
        { record: 'clouddevice:not_running_resolve_ratio', expr: 'vector(%g)' % c.notRunningResolveRatio },
        { record: 'clouddevice:frozen_max_ratio', expr: 'vector(%g)' % c.regionFrozenRatio },
        // The threshold in force in each region: its own, or the default. max() keeps one value
        // where a global ruler sees two copies of a threshold, instead of the NaN scalar() gives.
        {
          record: 'region:clouddevice_not_running_max_ratio:threshold',
          expr: |||
            max by (region) (clouddevice:not_running_max_ratio{region!=""})
              or on (region)
            (group by (region) (clouddevice_instances{%s}) * on () group_left () max (clouddevice:not_running_max_ratio{region=""}))
          ||| % S,
        },
        {
          record: 'region:clouddevice_not_running_resolve_ratio:threshold',
          expr: |||
            max by (region) (clouddevice:not_running_resolve_ratio{region!=""})
              or on (region)
            (group by (region) (clouddevice_instances{%s}) * on () group_left () max (clouddevice:not_running_resolve_ratio{region=""}))
          ||| % S,
        },
        {
          record: 'region:clouddevice_frozen_max_ratio:threshold',
          expr: |||
            max by (region) (clouddevice:frozen_max_ratio{region!=""})
              or on (region)
            (group by (region) (clouddevice_instances{%s}) * on () group_left () max (clouddevice:frozen_max_ratio{region=""}))
          ||| % S,
        },
      ],
    }],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        // Per-phone alerts name the phone. They need per-instance series:
        // --collector.instance-metrics=all or problems (a frozen phone, a failed backup or
        // restore is always "in trouble", so problems mode exports every one of them). With
        // none, the alerts of clouddevice-aggregates count them per region instead.
        name: 'clouddevice-instances',
        rules: [
          alert(
            'CloudDeviceInstanceFrozen',
            'instanceFrozen',
            'warning',
            'clouddevice_instance_frozen_status{%s} == 1' % S,
            'Cloud phone {{ $labels.instance_name }} ({{ $labels.instance_id }}) in {{ $labels.region }} is frozen',
            'Instance {{ $labels.instance_id }} ({{ $labels.instance_name }}) in {{ $labels.region }} has been frozen for %s. A frozen cloud phone cannot be used; it is usually frozen for an overdue bill or by the provider.' % util.words(c['for'].instanceFrozen),
            "a phone's `frozen_status` is 1",
            'the phone (id, name, region)',
          ),
          alert(
            'CloudDeviceBackupFailed',
            'backupFailed',
            'warning',
            'clouddevice_instance_backup_status{%s} == 3' % S,
            'Backup of cloud phone {{ $labels.instance_name }} ({{ $labels.instance_id }}) in {{ $labels.region }} failed',
            'The last backup of instance {{ $labels.instance_id }} ({{ $labels.instance_name }}) in {{ $labels.region }} failed and has not been retried successfully for %s.' % util.words(c['for'].backupFailed),
            "a phone's last backup failed (status 3)",
            'the phone',
          ),
          alert(
            'CloudDeviceRestoreFailed',
            'restoreFailed',
            'warning',
            'clouddevice_instance_restore_status{%s} == 3' % S,
            'Restore of cloud phone {{ $labels.instance_name }} ({{ $labels.instance_id }}) in {{ $labels.region }} failed',
            'The last restore of instance {{ $labels.instance_id }} ({{ $labels.instance_name }}) in {{ $labels.region }} failed; the phone may hold old or incomplete data.',
            "a phone's last restore failed (status 3)",
            'the phone',
          ),
        ],
      },
      {
        // The same conditions from the aggregates, per target and region: they work in every
        // mode. The frozen and failed ones stay silent where per-instance series already name
        // every phone concerned (all or problems mode does not page twice); they match on the
        // exporter (instance), not the job, so a separate job scraping collect[]=instances from
        // the same exporter counts too.
        name: 'clouddevice-aggregates',
        rules: [
          alert(
            'CloudDeviceFrozenInRegion',
            'instanceFrozen',
            'warning',
            |||
              sum by (%(by)s) (clouddevice_instances_by_frozen_status{%(S)s, status="frozen"}) > 0
                unless on (instance, region)
              count by (instance, region) (clouddevice_instance_frozen_status{%(S)s} == 1)
            ||| % { S: S, by: byRegion },
            phones('in {{ $labels.region }} is', 'in {{ $labels.region }} are') + ' frozen',
            instances('in {{ $labels.region }} has', 'in {{ $labels.region }} have') + ' been frozen for %s. This exporter exports no per-instance series for them (--collector.instance-metrics=none), so the alert cannot name them.' % util.words(c['for'].instanceFrozen),
            'frozen phones in a region that no per-instance series names (`none` mode)',
            'the target, region and count',
          ),
          alert(
            'CloudDeviceBackupsFailedInRegion',
            'backupFailed',
            'warning',
            |||
              sum by (%(by)s) (clouddevice_instances_by_backup_status{%(S)s, status="failed"}) > 0
                unless on (instance, region)
              count by (instance, region) (clouddevice_instance_backup_status{%(S)s} == 3)
            ||| % { S: S, by: byRegion },
            'The last backup of ' + phones('in {{ $labels.region }}', 'in {{ $labels.region }}') + ' failed',
            instances('in {{ $labels.region }} has', 'in {{ $labels.region }} have') + ' had a failed last backup for %s; no per-instance series name them (--collector.instance-metrics=none).' % util.words(c['for'].backupFailed),
            'phones with a failed backup in a region that no per-instance series names',
            'the target, region and count',
          ),
          // One alert per target and region in every mode, never one per phone: a fleet whose
          // backups all lapsed is one ticket per region. The dashboard's tables name the phones.
          // A phone with no backup time counts, once the `for:` has passed.
          alert(
            'CloudDeviceBackupsStaleInRegion',
            'backupStale',
            'info',
            |||
              (
                sum by (%(by)s) (clouddevice_instances_by_backup_age{%(S)s, max_age_seconds="+Inf"})
                  - sum by (%(by)s) (clouddevice_instances_by_backup_age{%(S)s, max_age_seconds="%(bound)d"})
                  + sum by (%(by)s) (clouddevice_instances_without_backup_time{%(S)s})
              ) > 0
            ||| % { S: S, by: byRegion, bound: c.backupStaleSeconds },
            phones('in {{ $labels.region }} has', 'in {{ $labels.region }} have') + ' no backup from the last %s' % staleDays,
            instances('in {{ $labels.region }} has', 'in {{ $labels.region }} have') + ' had a last backup older than %s, or no backup time at all, for %s. The dashboard\'s backup tables name them.' % [staleDays, util.words(c['for'].backupStale)],
            'phones of a region with a backup older than %s or none, in every mode' % staleDays,
            'the target, region and count',
          ),
          // One page for a region frozen as a whole (an overdue bill freezes the account),
          // instead of one per phone: Alertmanager's inhibit rule holds back the per-phone
          // alerts of the same target and region while this fires. A share of a small region
          // is not a region frozen: it needs regionFrozenMinCount phones too.
          alert(
            'CloudDeviceRegionFrozen',
            'regionFrozen',
            'critical',
            |||
              (
                region:clouddevice_instances_frozen:ratio{%(S)s}
                  > on (region) group_left ()
                max by (region) (region:clouddevice_frozen_max_ratio:threshold)
              )
                and on (%(by)s)
              sum by (%(by)s) (clouddevice_instances_by_frozen_status{%(S)s, status="frozen"}) >= %(min)d
            ||| % { S: S, by: byRegion, min: c.regionFrozenMinCount },
            '{{ $value | humanizePercentage }} of the cloud phones in {{ $labels.region }} are frozen',
            'In region {{ $labels.region }}, {{ $value | humanizePercentage }} of the instances (%d or more) have been frozen for %s, more than clouddevice:frozen_max_ratio allows: the account or the region is frozen as a whole. The per-phone frozen alerts of the region are inhibited.' % [c.regionFrozenMinCount, util.words(c['for'].regionFrozen)],
            "more than `clouddevice:frozen_max_ratio` (%g) of a region's phones frozen, and at least %d" % [c.regionFrozenRatio, c.regionFrozenMinCount],
            'the target, region and share',
          ),
          alert(
            'CloudDeviceInstancesNotRunning',
            'notRunning',
            'warning',
            // Above the threshold; or, once firing, above the lower resolve threshold.
            |||
              (
                region:clouddevice_instances_not_running:ratio{%(S)s}
                  > on (region) group_left ()
                max by (region) (region:clouddevice_not_running_max_ratio:threshold)
                  or
                (
                  region:clouddevice_instances_not_running:ratio{%(S)s}
                    > on (region) group_left ()
                  max by (region) (region:clouddevice_not_running_resolve_ratio:threshold)
                )
                  and on (%(by)s)
                ALERTS{alertname="CloudDeviceInstancesNotRunning", alertstate="firing", %(S)s}
              )
                and on (%(by)s)
              sum by (%(by)s) (clouddevice_instances_by_running_status{%(S)s, status=~"stopped|shut_down"}) >= %(min)d
            ||| % { S: S, by: byRegion, min: c.notRunningMinCount },
            '{{ $value | humanizePercentage }} of the cloud phones in {{ $labels.region }} are stopped or shut down',
            'In region {{ $labels.region }}, {{ $value | humanizePercentage }} of the instances (%d or more) have been stopped or shut down for %s, more than clouddevice:not_running_max_ratio allows. It resolves when the share falls below clouddevice:not_running_resolve_ratio.' % [c.notRunningMinCount, util.words(c['for'].notRunning)],
            "more than `clouddevice:not_running_max_ratio` (%g) of a region's phones stopped or shut down, and at least %d; resolves below `clouddevice:not_running_resolve_ratio` (%g)" % [c.notRunningRatio, c.notRunningMinCount, c.notRunningResolveRatio],
            'the target, region and share',
          ),
          // One alert per target and family (the family in the `metric` label).
          alert(
            'CloudDeviceUndocumentedStatus',
            'undocumentedStatus',
            'info',
            |||
              label_replace(
                sum by (%(by)s, __name__) ({__name__=~"clouddevice_instances_by_.+_status", %(S)s, status="undocumented"}),
                "metric", "$1", "__name__", "(.+)"
              ) > 0
            ||| % { S: S, by: by },
            phones('reports', 'report') + ' a status code the API reference does not document ({{ $labels.metric }})',
            '{{ $labels.instance }} counts ' + instances('', '') + 'under status="undocumented" in {{ $labels.metric }}: a code the reference does not list, or none. The API may have changed.',
            'phones counted under `status="undocumented"` in a family',
            'the target and the family (`metric`)',
          ),
          // clouddevice_fleet_instances is 0 for an empty list, so a fleet that drops to nothing
          // (every phone deleted, the wrong project, an unsubscribed service) fires too.
          alert(
            'CloudDeviceFleetShrinking',
            'fleetShrinking',
            'warning',
            |||
              clouddevice_fleet_instances{%(S)s}
                < %(keep)g * clouddevice_fleet_instances{%(S)s} offset %(window)s
            ||| % { S: S, keep: 1 - c.fleetShrinkRatio, window: c.fleetShrinkWindow },
            'The fleet of {{ $labels.instance }} shrank to ' + util.count('cloud phone', 'cloud phones'),
            '{{ $labels.instance }} counts ' + util.count('instance', 'instances') + ', more than %s %% fewer than %s ago.' % [util.percent(c.fleetShrinkRatio), util.words(c.fleetShrinkWindow)],
            '`clouddevice_fleet_instances` more than %s %% below %s ago (0 included)' % [util.percent(c.fleetShrinkRatio), c.fleetShrinkWindow],
            'the target and the count',
          ),
        ],
      },
      {
        name: 'clouddevice-exporter',
        rules: [
          // Both jobs: the fleet's, and with an accounts file the exporter's own /metrics.
          alert(
            'CloudDeviceExporterDown',
            'exporterDown',
            'critical',
            '(up{%s} or up{%s}) == 0' % [S, E],
            'clouddevice_exporter {{ $labels.instance }} is down',
            'Prometheus has not been able to scrape clouddevice_exporter ({{ $labels.instance }}) for %s. Frozen instances and failed backups are not being watched.' % util.words(c['for'].exporterDown),
            "`up` of the fleet's or the exporter's own job is 0",
            'the target',
          ),
          // Both jobs, as for ExporterDown. A job that had targets in the last day and has none now (removed from service
          // discovery, its pods gone). A target that moves (a pod rescheduled, a host renamed)
          // or an account removed from the file leaves the job with a target: silent. Silent
          // too on a Prometheus that never scraped the job.
          alert(
            'CloudDeviceExporterMissing',
            'exporterMissing',
            'critical',
            |||
              group by (%(jobs)s) (max_over_time(up{%(S)s}[1d]) or max_over_time(up{%(E)s}[1d]))
                unless on (%(jobs)s)
              group by (%(jobs)s) (up{%(S)s} or up{%(E)s})
            ||| % { S: S, E: E, jobs: jobs },
            'clouddevice_exporter job {{ $labels.job }} has no target left',
            'Prometheus scraped clouddevice_exporter in job {{ $labels.job }} within the last day, and has had no target in that job for %s: frozen instances and failed backups are not being watched.' % util.words(c['for'].exporterMissing),
            "the fleet's or the exporter's own job had targets in the last day and has none (never where the job was never scraped; a target that moves keeps the job)",
            'the job',
          ),
          // Catches scrapes that alternate between failing and succeeding, which
          // `clouddevice_up == 0 for: 10m` never sees.
          alert(
            'CloudDeviceScrapeFailing',
            'scrapeFailing',
            'critical',
            'avg_over_time(clouddevice_up{%s}[15m]) < %g' % [S, c.scrapeSuccessRatio],
            'clouddevice_exporter {{ $labels.instance }} cannot read the instance list',
            'Only {{ $value | humanizePercentage }} of the scrapes of {{ $labels.instance }} in the last 15 minutes read the whole CloudDevice instance list. The exporter\'s log says why.',
            'fewer than %s %% of the scrapes of 15m read the whole list (alternating failures included)' % util.percent(c.scrapeSuccessRatio),
            'the target and the share',
          ),
          alert(
            'CloudDeviceScrapeNearTimeout',
            'scrapeNearTimeout',
            'warning',
            |||
              avg_over_time(clouddevice_scrape_duration_seconds{%(S)s}[15m])
                / avg_over_time(clouddevice_scrape_timeout_seconds{%(S)s}[15m]) > %(ratio)g
            ||| % { S: S, ratio: c.scrapeNearTimeoutRatio },
            'Scrapes of clouddevice_exporter {{ $labels.instance }} take {{ $value | humanizePercentage }} of their timeout',
            'Reading the instance list takes {{ $value | humanizePercentage }} of the scrape timeout on average: the next slow page or retry fails the scrape.',
            'scrapes use more than %s %% of their timeout on average over 15m' % util.percent(c.scrapeNearTimeoutRatio),
            'the target and the share',
          ),
          // Retried 429s count, but a few of them are far below the ratio.
          alert(
            'CloudDeviceAPIErrors',
            'apiErrors',
            'warning',
            |||
              sum by (%(by)s, error_code) (rate(clouddevice_exporter_api_errors_total{%(S)s}[15m]))
                / on (%(by)s) group_left ()
              sum by (%(by)s) (rate(clouddevice_exporter_api_requests_total{%(S)s}[15m]))
                > %(ratio)g
            ||| % { S: S, by: by, ratio: c.apiErrorRatio },
            '{{ $value | humanizePercentage }} of the API requests of clouddevice_exporter {{ $labels.instance }} fail with {{ $labels.error_code }}',
            '{{ $labels.instance }}: {{ $value | humanizePercentage }} of the requests to the CloudDevice APIs in the last 15 minutes failed with {{ $labels.error_code }}.',
            'more than %s %% of the API requests fail with one error code over 15m' % util.percent(c.apiErrorRatio),
            'the target and the code',
          ),
          alert(
            'CloudDeviceTokenExpiringSoon',
            'tokenExpiring',
            'warning',
            '(clouddevice_exporter_token_expiry_timestamp_seconds{%s} - time()) < %d' % [S, c.tokenExpirySeconds],
            'The IAM token of clouddevice_exporter {{ $labels.instance }} expires in {{ $value | humanizeDuration }}',
            'The exporter renews its IAM token at half its lifetime; a token this close to expiry means renewal keeps failing.',
            'the IAM token expires within %s (renewal keeps failing)' % util.duration(c.tokenExpirySeconds),
            'the target',
          ),
          // Only with --collection.interval (clouddevice_collection_age_seconds is there once a
          // collection has succeeded, as the timestamp is): a
          // scrape then answers from the latest collection, so a scheduler that stopped, or
          // collections that keep failing, would otherwise look like data that simply holds.
          alert(
            'CloudDeviceCollectionStale',
            'collectionStale',
            'critical',
            |||
              (time() - clouddevice_exporter_last_collection_timestamp_seconds{%(S)s} > %(seconds)d)
                and on (%(by)s) clouddevice_collection_age_seconds{%(S)s}
            ||| % { S: S, by: by, seconds: c.collectionStaleSeconds },
            'The data of clouddevice_exporter {{ $labels.instance }} is {{ $value | humanizeDuration }} old',
            'The latest successful scheduled collection (--collection.interval) of {{ $labels.instance }} ended {{ $value | humanizeDuration }} ago, more than %s: the counts it serves are that old. The exporter\'s log says why the collections since failed (clouddevice_up is 0) or whether they stopped.' % util.duration(c.collectionStaleSeconds),
            'with `--collection.interval`, the latest successful collection ended more than %s ago' % util.duration(c.collectionStaleSeconds),
            'the target',
          ),
          // After a refused reload the exporter keeps the configuration it had: an account added
          // to the file is not watched, a removed one still is, a new password not in use.
          alert(
            'CloudDeviceExporterConfigReloadFailed',
            'configReloadFailed',
            'warning',
            'clouddevice_exporter_config_last_reload_successful{%s} == 0' % E,
            'clouddevice_exporter {{ $labels.instance }} refused its configuration',
            'The last reload of the configuration files (--config.file, --web.config.file) by {{ $labels.instance }} failed %s ago or more; it still runs with the last ones it accepted: the accounts, users and certificates of before. Its log says which file and which line are wrong.' % util.words(c['for'].configReloadFailed),
            'the configuration files (accounts file, web configuration) were refused on the last reload',
            'the exporter',
          ),
        ],
      },
    ],
  },
}
