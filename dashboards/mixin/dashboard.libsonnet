// The Grafana dashboard, safe at 100,000 phones: every table is bounded by topk (the bound in its
// title), the phone timeline draws one chosen phone, and a table that cannot be complete in the
// running mode shows nothing rather than a part that looks whole.
local util = import 'util.libsonnet';

{
  local c = $._config,
  local d = c.dashboard,
  local S = c.clouddeviceSelector,
  local E = c.exporterSelector,
  local L = d.tableLimit,
  local ds = { type: 'prometheus', uid: '${datasource}' },
  local staleDays = util.duration(c.backupStaleSeconds),

  // The target's series: the selector, then the job, target and account the viewer chose.
  local t = '%s, job=~"$job", instance=~"$instance", account=~"$account"' % S,
  // The fleet's aggregates, in the chosen regions and SKUs.
  local f = t + ', region=~"$region", sku=~"$sku"',
  // Per-instance status series, which carry the region but not the SKU (info has it).
  local r = t + ', region=~"$region"',
  // Names, projects and SKUs come from clouddevice_instance_info, so they show with
  // --collector.instance-name=info too, and the SKU choice applies.
  local named(expr) = '(%s) * on (job, instance, instance_id) group_left (instance_name, project_name) clouddevice_instance_info{%s}' % [expr, f],
  // True for the targets that export a series per phone for every phone (all mode): in problems
  // mode a table of healthy phones' backups would be a part that looks whole.
  local complete = '(count by (instance) (clouddevice_instance_info{%s}) >= on (instance) max by (instance) (clouddevice_fleet_instances{%s}))' % [t, t],

  local target(expr, legend='__auto', ref='A', instant=false, table=false) = {
    datasource: ds,
    expr: expr,
    refId: ref,
    legendFormat: legend,
  } + (if instant then { instant: true, range: false } else { range: true })
    + (if table then { format: 'table' } else {}),

  local stat(title, description, expr, steps, noValue='No data: is the exporter up?', extra={}) = {
    type: 'stat',
    title: title,
    description: description,
    datasource: ds,
    targets: [target(expr, instant=true)],
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'background',
      graphMode: 'none',
      justifyMode: 'auto',
      orientation: 'auto',
      textMode: 'auto',
    },
    fieldConfig: {
      defaults: {
        unit: 'none',
        decimals: 0,
        thresholds: { mode: 'absolute', steps: steps },
        color: { mode: 'thresholds' },
        noValue: noValue,
      },
      overrides: [],
    },
  } + extra,
  local step(color, value=null) = { color: color, value: value },
  local change(title, description, expr) = stat(title, description, '%s - %s' % [expr, std.strReplace(expr, '})', '} offset 1d)')], [step('text')], 'No data', {
    options+: { colorMode: 'value' },
  }),

  local series(title, description, targets, unit='short', stacking='none', legend='table', extra={}) = {
    type: 'timeseries',
    title: title,
    description: description,
    datasource: ds,
    targets: targets,
    options: {
      legend: if legend == 'table'
      then { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull'] }
      else { displayMode: 'list', placement: 'bottom', showLegend: true },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
    fieldConfig: {
      defaults: {
        unit: unit,
        custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never', stacking: { mode: stacking, group: 'A' } },
        color: { mode: 'palette-classic' },
      },
      overrides: [],
    },
  } + extra,
  local count(title, description, expr) = series(title, description, [target(expr, '{{region}}')], unit='none', legend='list', extra={
    fieldConfig+: { defaults+: { decimals: 0, min: 0 } },
  }),

  local table(title, description, expr, age=false) = {
    type: 'table',
    title: title,
    description: description,
    datasource: ds,
    targets: [target(expr, instant=true, table=true)],
    options: {
      showHeader: true,
      cellHeight: 'sm',
      footer: { show: false, reducer: ['sum'], fields: '' },
      sortBy: if age then [{ displayName: 'Age', desc: true }] else [],
    },
    transformations: [{
      id: 'organize',
      options: {
        excludeByName: { Time: true, __name__: true, job: true, instance: true, sku: true, Value: !age },
        renameByName: { instance_id: 'Instance ID', instance_name: 'Name', region: 'Region', project_name: 'Project', account: 'Account' }
                      + (if age then { Value: 'Age' } else {}),
        indexByName: { instance_id: 0, instance_name: 1, region: 2, project_name: 3 },
      },
    }],
    fieldConfig: { defaults: { unit: if age then 'dtdurations' else 'none', custom: { align: 'auto', filterable: true } }, overrides: [] },
  },

  // Links a panel to the RUNBOOK.md sections of the alerts that watch what it shows, the
  // sections the alerts' runbook_url point at.
  local runbook(panel, alerts) = panel {
    links: [{ title: 'Runbook: ' + a, url: c.runbookURL + std.asciiLower(a), targetBlank: true } for a in alerts],
  },

  local row(title) = { type: 'row', title: title, collapsed: false, panels: [] },
  local colour(pattern, colour) = {
    matcher: { id: 'byRegexp', options: '/ %s$/' % pattern },
    properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: colour } }],
  },
  local states(pattern, names) = {
    matcher: { id: 'byRegexp', options: '/ %s$/' % pattern },
    properties: [
      { id: 'mappings', value: [{ type: 'value', options: {
        [std.toString(i)]: { text: names[i][0], color: names[i][1], index: i }
        for i in std.range(0, std.length(names) - 1)
      } }] },
      { id: 'color', value: { mode: 'thresholds' } },
      { id: 'thresholds', value: { mode: 'absolute', steps: [step('purple')] } },
    ],
  },
  local variable(name, label, query, extra={}) = {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
    refresh: 2,
    multi: true,
    includeAll: true,
    sort: 1,
    regex: '',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    hide: 0,
    options: [],
  } + extra,
  local textbox(name, label, description) = {
    name: name,
    label: label,
    description: description,
    type: 'textbox',
    query: '',
    current: { selected: false, text: '', value: '' },
    hide: 0,
    options: [],
  },

  // Panels in rows, each row a list of [panel, width, height]; laid out left to right.
  local layout(rows) =
    local place(acc, item) =
      local p = item[0];
      local w = item[1];
      local h = item[2];
      local wrap = acc.x + w > 24;
      local x = if wrap then 0 else acc.x;
      local y = if wrap then acc.y + acc.h else acc.y;
      {
        x: x + w,
        y: y,
        h: if wrap then h else std.max(acc.h, h),
        panels: acc.panels + [p { id: std.length(acc.panels) + 1, gridPos: { h: h, w: w, x: x, y: y } }],
      };
    std.foldl(
      function(acc, section)
        local start = acc.y + acc.h;
        local withRow = acc { x: 0, y: start + 1, h: 0, panels: acc.panels + [section[0] { id: std.length(acc.panels) + 1, gridPos: { h: 1, w: 24, x: 0, y: start } }] };
        std.foldl(place, section[1], withRow),
      rows,
      { x: 0, y: 0, h: 0, panels: [] },
    ).panels,

  local frozen = 'clouddevice_instances_by_frozen_status{%s, status="frozen"}' % f,
  local failed = 'clouddevice_instances_by_backup_status{%s, status="failed"}' % f,
  local instances = 'clouddevice_instances{%s}' % f,
  local phone(metric) = '%s{%s, instance_id="$instance_id"} * on (job, instance, instance_id) group_left (instance_name) clouddevice_instance_info{%s, instance_id="$instance_id"}' % [metric, t, t],

  grafanaDashboards+:: {
    'clouddevice-fleet.json': {
      __inputs: [{
        name: 'DS_PROMETHEUS',
        label: 'Prometheus',
        description: 'The Prometheus that scrapes clouddevice_exporter',
        type: 'datasource',
        pluginId: 'prometheus',
        pluginName: 'Prometheus',
      }],
      __requires: [
        { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
        { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
        { type: 'panel', id: 'stat', name: 'Stat', version: '' },
        { type: 'panel', id: 'table', name: 'Table', version: '' },
        { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
        { type: 'panel', id: 'state-timeline', name: 'State timeline', version: '' },
      ],
      uid: d.uid,
      title: d.title,
      description: "Huawei Cloud CloudDevice (KooPhone) cloud phones from clouddevice_exporter: fleet, frozen instances, backups, utilisation and the exporter's health. Generated from dashboards/mixin.",
      tags: d.tags,
      editable: true,
      graphTooltip: 1,
      schemaVersion: 38,
      version: 1,
      time: { from: d.from, to: 'now' },
      refresh: d.refresh,
      timezone: '',
      links: [],
      annotations: { list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
        {
          datasource: ds,
          enable: true,
          expr: 'ALERTS{alertname=~"CloudDevice.*", alertstate="firing", job=~"$job", instance=~"$instance", account=~"$account"}',
          iconColor: 'red',
          name: 'CloudDevice alerts',
          step: '60s',
          titleFormat: '{{alertname}}',
          textFormat: '{{region}} {{instance_id}} {{instance_name}}',
          useValueForTime: false,
        },
      ] },
      templating: { list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          regex: '',
          current: { selected: true, text: '${DS_PROMETHEUS}', value: '${DS_PROMETHEUS}' },
          hide: 0,
          includeAll: false,
          multi: false,
          options: [],
          refresh: 1,
        },
        // All is the list of jobs (no allValue), so two deployments are summed only when both
        // are chosen.
        variable('job', 'Job', 'label_values(clouddevice_up{%s}, job)' % S),
        variable('instance', 'Target', 'label_values(clouddevice_up{%s, job=~"$job"}, instance)' % S, {
          description: 'The exporters (or, with an accounts file, the accounts) of the chosen jobs.',
          allValue: '.*',
        }),
        variable('account', 'Account', 'label_values(clouddevice_up{%s, job=~"$job"}, account)' % S, {
          description: 'The accounts of an accounts file (--config.file), as their probes are labelled; All also takes exporters of one account, whose series have no account label.',
          allValue: '.*',
        }),
        variable('region', 'Region', 'label_values(clouddevice_instances{%s}, region)' % t, { allValue: '.*' }),
        variable('sku', 'SKU', 'label_values(clouddevice_instances{%s, region=~"$region"}, sku)' % t, { allValue: '.*' }),
        textbox('instance_id', 'Phone (instance ID)', 'The instance ID of the phone the Phone timeline draws, exactly; empty draws nothing. The tables and the name search give IDs.'),
        textbox('phone', 'Find by name (regex)', "A regular expression over the phones' names for the 'Phones by name' table; empty lists none."),
      ] },
      panels: layout([
        [row('Fleet overview'), [
          [stat('Instances', 'Cloud phones in the selected regions and SKUs, from the last scrape that read the whole list.', 'sum(%s)' % instances, [step('blue')]), 4, 4],
          [stat('Running', 'Instances whose running status is running.', 'sum(clouddevice_instances_by_running_status{%s, status="running"})' % f, [step('green')]), 4, 4],
          [runbook(stat('Frozen', 'Instances that are frozen (frozen_status 1). Any frozen instance turns the panel red; the table below names them.', 'sum(%s)' % frozen, [step('green'), step('red', 1)]), ['CloudDeviceInstanceFrozen', 'CloudDeviceRegionFrozen']), 4, 4],
          [runbook(stat('Failed backups', 'Instances whose last backup failed (backup_status 3).', 'sum(%s)' % failed, [step('green'), step('orange', 1), step('red', 10)]), ['CloudDeviceBackupFailed']), 4, 4],
          [runbook(stat('Exporter up', 'Each target of the selected jobs: up when it is scraped and its last scrape read every page of the instance list; down when Prometheus cannot scrape it (up 0) or it cannot read the list (clouddevice_up 0). An instant query: it never shows an old value.', 'up{%(t)s} * on (job, instance) group_left () clouddevice_up{%(t)s} or on (job, instance) up{%(t)s} * 0' % { t: t }, [step('red'), step('green', 1)], 'No target', {
            targets: [target('up{%(t)s} * on (job, instance) group_left () clouddevice_up{%(t)s} or on (job, instance) up{%(t)s} * 0' % { t: t }, '{{instance}}', instant=true)],
            options+: { textMode: 'value_and_name' },
            fieldConfig+: { defaults+: { mappings: [{ type: 'value', options: { '0': { text: 'down', color: 'red' }, '1': { text: 'up', color: 'green' } } }] } },
          }), ['CloudDeviceExporterDown', 'CloudDeviceScrapeFailing']), 4, 4],
          [stat('Exporter version', "The version of each clouddevice_exporter its own /metrics reports (clouddevice_exporter_build_info, read through the exporter selector: with an accounts file, the job that scrapes the exporter's /metrics, not the probes).", 'count by (version) (clouddevice_exporter_build_info{%s})' % E, [step('text')], 'No data', {
            targets: [target('count by (version) (clouddevice_exporter_build_info{%s})' % E, '{{version}}', instant=true)],
            options+: { colorMode: 'none', textMode: 'name' },
          }), 4, 4],
          [change('Instances, change since yesterday', 'Instances now minus instances 24 hours ago, in the selected regions and SKUs. No data until the exporter has been scraped for a day.', 'sum(%s)' % instances), 8, 3],
          [change('Frozen, change since yesterday', 'Frozen instances now minus 24 hours ago.', 'sum(%s)' % frozen), 8, 3],
          [change('Failed backups, change since yesterday', 'Instances whose last backup failed, now minus 24 hours ago.', 'sum(%s)' % failed), 8, 3],
        ]],
        [row('Running status'), [
          [runbook(series('Instances by running status, per region', 'Instances in each running status (unknown, stopped, running, going_offline, starting, shut_down, undocumented), per region, over time. Each status has its own colour: running green, stopped orange, shut_down red, starting blue, going_offline yellow, unknown grey, undocumented purple.', [target('sum by (region, status) (clouddevice_instances_by_running_status{%s})' % f, '{{region}} {{status}}')], stacking='normal', extra={
            fieldConfig+: { overrides: [
              colour('running', 'green'),
              colour('stopped', 'orange'),
              colour('shut_down', 'red'),
              colour('starting', 'blue'),
              colour('going_offline', 'yellow'),
              colour('unknown', 'text'),
              colour('undocumented', 'purple'),
            ] },
          }), ['CloudDeviceInstancesNotRunning', 'CloudDeviceUndocumentedStatus']), 16, 8],
          [runbook(series('Instances per region', 'Total instances per region over time.', [target('sum by (region) (%s)' % instances, '{{region}}')]), ['CloudDeviceFleetShrinking']), 8, 8],
        ]],
        [row('Frozen instances and failed backups'), [
          [table('Frozen instances (%d at most)' % L, 'Instances that are frozen now, by ID, name and region; %d at most. Needs per-instance series: --collector.instance-metrics=all or problems (a frozen instance is always exported in problems mode). In every mode, the Frozen stat and Frozen per region count them all.' % L, 'topk(%d, %s)' % [L, named('clouddevice_instance_frozen_status{%s} == 1' % r)]), 8, 9],
          [table('Failed backups (%d at most)' % L, 'Instances whose last backup failed, by ID, name and region; %d at most. Needs per-instance series: --collector.instance-metrics=all or problems. In every mode, Failed backups per region counts them all.' % L, 'topk(%d, %s)' % [L, named('clouddevice_instance_backup_status{%s} == 3' % r)]), 8, 9],
          [runbook(table('Failed restores (%d at most)' % L, 'Instances whose last restore failed, by ID, name and region; %d at most. Needs per-instance series: --collector.instance-metrics=all or problems.' % L, 'topk(%d, %s)' % [L, named('clouddevice_instance_restore_status{%s} == 3' % r)]), ['CloudDeviceRestoreFailed']), 8, 9],
        ]],
        [row('Per region, in every instance-metrics mode'), [
          [runbook(count('Frozen per region', 'Frozen instances per region, from the aggregate clouddevice_instances_by_frozen_status: works with every --collector.instance-metrics mode, none included.', 'sum by (region) (%s)' % frozen), ['CloudDeviceFrozenInRegion', 'CloudDeviceRegionFrozen']), 8, 8],
          [runbook(count('Failed backups per region', 'Instances whose last backup failed, per region, from the aggregate clouddevice_instances_by_backup_status: works with every --collector.instance-metrics mode.', 'sum by (region) (%s)' % failed), ['CloudDeviceBackupsFailedInRegion']), 8, 8],
          [runbook(count('Backups older than %s per region' % staleDays, 'Instances whose last backup is more than %s old, or that have no backup time, per region, from clouddevice_instances_by_backup_age and clouddevice_instances_without_backup_time: works with every mode. %d s must be one of --collector.backup-age-buckets.' % [staleDays, c.backupStaleSeconds], 'sum by (region) (clouddevice_instances_by_backup_age{%(f)s, max_age_seconds="+Inf"}) - sum by (region) (clouddevice_instances_by_backup_age{%(f)s, max_age_seconds="%(b)d"}) + sum by (region) (clouddevice_instances_without_backup_time{%(f)s})' % { f: f, b: c.backupStaleSeconds }), ['CloudDeviceBackupsStaleInRegion']), 8, 8],
        ]],
        [row('Backup freshness (all mode)'), [
          [table('Oldest successful backups (%d at most)' % L, "Instances whose last backup succeeded, with the time since it happened; the %d oldest first. Instances with a failed or no backup are in the other tables. Needs --collector.instance-metrics=all: for a target in problems mode, which leaves healthy instances out, it shows nothing rather than a part of them. In every mode, 'Backups older than %s per region' counts them." % [L, staleDays], 'sort_desc(topk(%d, %s and on (instance) %s))' % [L, named('(time() - clouddevice_instance_backup_timestamp_seconds{%s}) and on (job, instance, instance_id) (clouddevice_instance_backup_status{%s} == 2)' % [r, t]), complete], age=true), 8, 10],
          [table('Backups older than %s (%d at most)' % [staleDays, L], "Instances whose last backup event is more than %s old, oldest first; %d at most. Needs --collector.instance-metrics=all (nothing in problems mode); in every mode, 'Backups older than %s per region' counts them." % [staleDays, L, staleDays], 'topk(%d, %s and on (instance) %s)' % [L, named('(time() - clouddevice_instance_backup_timestamp_seconds{%s}) > %d' % [r, c.backupStaleSeconds]), complete], age=true), 8, 10],
          [table('No backup time (%d at most)' % L, 'Instances that report no readable backup time: never backed up, or a time the exporter could not read; %d at most. Needs --collector.instance-metrics=all (nothing in problems mode).' % L, 'topk(%d, %s and on (instance) %s)' % [L, named('clouddevice_instance_backup_status{%s} unless on (job, instance, instance_id) clouddevice_instance_backup_timestamp_seconds{%s}' % [r, t]), complete]), 8, 10],
        ]],
        [row('Find a phone'), [
          [table('Phones by name (%d at most)' % d.searchLimit, "The phones whose name matches the 'Find by name' box, with their instance IDs for the 'Phone (instance ID)' box; %d at most, and none while the box is empty. Needs per-instance series with names (all mode, problems mode for phones in trouble; not with --collector.instance-name=nowhere)." % d.searchLimit, 'topk(%d, clouddevice_instance_info{%s, instance_name=~"$phone", instance_name!=""})' % [d.searchLimit, f]), 8, 8],
          [{
            type: 'state-timeline',
            title: 'Phone timeline',
            description: "Running, frozen and backup status over time of the phone whose instance ID is in the 'Phone (instance ID)' box at the top; an empty box draws nothing. Every query reads that one phone's series only. Needs per-instance series: all mode, or problems mode for phones in trouble.",
            datasource: ds,
            targets: [
              target(phone('clouddevice_instance_running_status'), '{{instance_name}} ({{instance_id}}) running', 'A'),
              target(phone('clouddevice_instance_frozen_status'), '{{instance_name}} ({{instance_id}}) frozen', 'B'),
              target(phone('clouddevice_instance_backup_status'), '{{instance_name}} ({{instance_id}}) backup', 'C'),
            ],
            options: { showValue: 'auto', mergeValues: true, rowHeight: 0.9, alignValue: 'left', legend: { showLegend: false }, tooltip: { mode: 'single' } },
            fieldConfig: {
              defaults: { color: { mode: 'fixed', fixedColor: 'purple' }, custom: { fillOpacity: 80, lineWidth: 0 } },
              overrides: [
                states('running', [['unknown', 'text'], ['stopped', 'orange'], ['running', 'green'], ['going_offline', 'yellow'], ['starting', 'blue'], ['shut_down', 'red']]),
                states('frozen', [['normal', 'green'], ['frozen', 'red']]),
                states('backup', [['preparing', 'blue'], ['executing', 'blue'], ['successful', 'green'], ['failed', 'red'], ['others', 'yellow']]),
              ],
            },
          }, 16, 8],
        ]],
        [row('Utilisation per SKU'), [
          [series('Assigned share per SKU', 'Share of the instances of each SKU that are assigned to a user.', [target('sum by (sku) (clouddevice_instances_by_assign_status{%s, status="assigned"}) / sum by (sku) (%s)' % [f, instances], '{{sku}}')], unit='percentunit', extra={ fieldConfig+: { defaults+: { min: 0, max: 1 } } }), 12, 8],
          [series('Logged-in share per SKU', 'Share of the instances of each SKU with a user logged in.', [target('sum by (sku) (clouddevice_instances_by_login_status{%s, status="logged_in"}) / sum by (sku) (%s)' % [f, instances], '{{sku}}')], unit='percentunit', extra={ fieldConfig+: { defaults+: { min: 0, max: 1 } } }), 12, 8],
        ]],
        [row('Exporter health'), [
          [runbook(series('Whole list read', "clouddevice_up: 1 when a scrape read every page of the instance list, 0 when it failed (see the exporter's log and the errors panel).", [target('clouddevice_up{%s}' % t, '{{instance}}')], unit='none', extra={ fieldConfig+: { defaults+: { min: 0, max: 1 } } }), ['CloudDeviceScrapeFailing']), 8, 8],
          [runbook(series('Scrape duration vs timeout', "Time each scrape spent reading the list, against the time it had (the scraper's timeout). A duration near the timeout means scrapes are about to fail: raise the timeout or --clouddevice.concurrency.", [target('clouddevice_scrape_duration_seconds{%s}' % t, 'duration {{instance}}', 'A'), target('clouddevice_scrape_timeout_seconds{%s}' % t, 'timeout {{instance}}', 'B')], unit='s', extra={ fieldConfig+: { defaults+: { min: 0 } } }), ['CloudDeviceScrapeNearTimeout']), 8, 8],
          [runbook(series('API errors by code', "Failed requests to the CloudDevice APIs per second, by error code (the API's own, or timeout, throttled, list_changed, too_large, ...).", [target('sum by (error_code) (rate(clouddevice_exporter_api_errors_total{%s}[$__rate_interval]))' % t, '{{error_code}}')], unit='reqps', extra={ fieldConfig+: { defaults+: { min: 0 } } }), ['CloudDeviceAPIErrors']), 8, 8],
          [series('API requests by status', 'Requests to the CloudDevice APIs per second, by API and HTTP status.', [target('sum by (api, code) (rate(clouddevice_exporter_api_requests_total{%s}[$__rate_interval]))' % t, '{{api}} {{code}}')], unit='reqps', extra={ fieldConfig+: { defaults+: { min: 0 } } }), 8, 8],
          [series('API latency (p95)', '95th percentile of the time from sending a request to the CloudDevice APIs to having its whole answer, by API.', [target('histogram_quantile(0.95, sum by (le, api) (rate(clouddevice_exporter_api_request_duration_seconds_bucket{%s}[$__rate_interval])))' % t, '{{api}}')], unit='s', extra={ fieldConfig+: { defaults+: { min: 0 } } }), 8, 8],
          [runbook(stat('Age of the data', 'Each target: the time since its last successful read of the instance list, or "never read" for one that has not read it whole since it started. It grows while scrapes fail, or up to --scrape.min-interval when collections are reused.', 'time() - clouddevice_exporter_last_collection_timestamp_seconds{%(t)s} or on (job, instance) clouddevice_up{%(t)s} * 0 - 1' % { t: t }, [step('green'), step('orange', c.collectionStaleSeconds / 2), step('red', c.collectionStaleSeconds)], 'No target', {
            targets: [target('time() - clouddevice_exporter_last_collection_timestamp_seconds{%(t)s} or on (job, instance) clouddevice_up{%(t)s} * 0 - 1' % { t: t }, '{{instance}}', instant=true)],
            options+: { textMode: 'value_and_name' },
            fieldConfig+: { defaults+: { unit: 's', decimals: null, mappings: [{ type: 'value', options: { '-1': { text: 'never read', color: 'red' } } }] } },
          }), ['CloudDeviceCollectionStale', 'CloudDeviceScrapeFailing']), 8, 8],
        ]],
      ]),
    },
  },
}
