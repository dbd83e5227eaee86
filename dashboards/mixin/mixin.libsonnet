// clouddevice_exporter's monitoring mixin: prometheusRules (recording rules),
// prometheusAlerts and grafanaDashboards, configured by _config (config.libsonnet).
//   jsonnet -J dashboards/mixin dashboards/mixin/mixin.libsonnet
// dashboards/mixin/build.jsonnet writes the files most users load; tests/mixin.sh checks that
// the committed ones are what it writes.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboard.libsonnet')
