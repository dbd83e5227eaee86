// Writes the files most users load, from the mixin with its default _config. From the
// repository's top:
//   jsonnet -S -m . -J dashboards/mixin dashboards/mixin/build.jsonnet
// Do not edit the files it writes: change the mixin and run it again (tests/mixin.sh, run by
// .ci/run, fails when they differ).
local mixin = import 'mixin.libsonnet';
local groups = mixin.prometheusRules.groups + mixin.prometheusAlerts.groups;
local yaml(value) = std.manifestYamlDoc(value, indent_array_in_object=true, quote_keys=false) + '\n';

{
  'dashboards/prometheus/alerts.yml': |||
    # Generated from dashboards/mixin (jsonnet -S -m . -J dashboards/mixin dashboards/mixin/build.jsonnet):
    # change the mixin, not this file. Alerting and recording rules for clouddevice_exporter, with
    # the mixin's default _config: the fleet read from job="clouddevice" (and, for the exporter's
    # own /metrics with an accounts file, job="clouddevice-exporter"). Needs Prometheus 2.42 or
    # later (keep_firing_for). Load with `rule_files: [alerts.yml]`; dashboards/README.md says
    # what each alert means and how to tune them, dashboards/RUNBOOK.md what to do.
  ||| + yaml({ groups: groups }),

  'examples/kubernetes/prometheusrule.yaml': |||
    # Generated from dashboards/mixin, like dashboards/prometheus/alerts.yml, whose groups it
    # carries for the Prometheus Operator.
  ||| + yaml({
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'clouddevice-exporter',
      namespace: 'monitoring',
      labels: {
        'app.kubernetes.io/name': 'clouddevice-exporter',
        // kube-prometheus-stack picks these up by its Helm release name: set yours
        // (kustomization.yaml).
        release: 'kube-prometheus-stack',
      },
    },
    spec: { groups: groups },
  }),

  'dashboards/grafana/clouddevice-fleet.json':
    std.manifestJsonEx(mixin.grafanaDashboards['clouddevice-fleet.json'], '  ') + '\n',
}
