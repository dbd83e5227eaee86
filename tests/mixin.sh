#!/usr/bin/env bash
# Checks the monitoring mixin (dashboards/mixin) with jsonnet (Debian's jsonnet package, which
# .ci/run installs):
#   - the committed rules, PrometheusRule and dashboard are exactly what it generates;
#   - built with another selector (job="phones", cluster="eu") every selector of every
#     recording rule, alert, panel and dashboard variable carries it, none is left without one,
#     no job="clouddevice" is left, and promtool accepts the rules.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "mixin: jsonnet -J dashboards/mixin dashboards/mixin/mixin.libsonnet"
jsonnet -J dashboards/mixin dashboards/mixin/mixin.libsonnet >/dev/null

echo "mixin: the committed files are what dashboards/mixin/build.jsonnet writes"
mkdir -p "$work/dashboards/prometheus" "$work/dashboards/grafana" "$work/examples/kubernetes"
jsonnet -S -m "$work" -J dashboards/mixin dashboards/mixin/build.jsonnet >/dev/null
stale=0
for file in dashboards/prometheus/alerts.yml examples/kubernetes/prometheusrule.yaml dashboards/grafana/clouddevice-fleet.json; do
  if ! diff -u "$file" "$work/$file"; then
    echo "mixin: FAIL $file differs from the mixin's output; regenerate it:"
    echo "  jsonnet -S -m . -J dashboards/mixin dashboards/mixin/build.jsonnet"
    stale=1
  fi
done
[ "$stale" -eq 0 ]

echo "mixin: another selector reaches every expression"
jsonnet -J dashboards/mixin -e '
  local mixin = (import "mixin.libsonnet") + { _config+:: {
    clouddeviceSelector: "job=\"phones\", cluster=\"eu\"",
    exporterSelector: "job=\"phones-exporter\", cluster=\"eu\"",
  } };
  {
    groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups,
    dashboards: mixin.grafanaDashboards,
  }' >"$work/custom.json"
python3 - "$work/custom.json" "$work/custom-rules.json" <<'PY'
import json, re, sys

built = json.load(open(sys.argv[1]))
json.dump({"groups": built["groups"]}, open(sys.argv[2], "w"))
CARRIES = ('job="phones", cluster="eu"', 'job="phones-exporter", cluster="eu"')
# Outputs of the threshold rules, which read no series of the exporter.
THRESHOLDS = re.compile(r'^(clouddevice:\w+_(max|resolve)_ratio|region:clouddevice_\w+:threshold)$')
failures = []


def check(where, expr):
    # Every selector block names the selector, unless it selects a threshold rule's output.
    for m in re.finditer(r'([\w:]*)\s*(\{[^{}]*\})', expr):
        name, block = m.group(1), m.group(2)
        if THRESHOLDS.match(name) or name == "ALERTS":
            continue
        if not any(c in block for c in CARRIES):
            failures.append(f"{where}: {name}{block} lacks the selector")
    # No series is read without a selector block.
    bare = re.sub(r'"[^"]*"', '""', expr)
    for m in re.finditer(r'(?<![\w:])([a-z_]+:[\w:]+|clouddevice_\w+|up)(?![\w:])(?!\s*\{)', bare):
        if not THRESHOLDS.match(m.group(1)):
            failures.append(f"{where}: {m.group(1)} is read without a selector")
    if 'job="clouddevice"' in expr or "clouddevice-exporter" in expr:
        failures.append(f"{where}: the default job is left: {expr}")


def minutes(duration):
    return int(duration[:-1]) * {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}[duration[-1]]


count = 0
for group in built["groups"]:
    for rule in group["rules"]:
        check(rule.get("alert") or rule["record"], rule["expr"])
        count += 1
        # Series vanish while the exporter is down: an alert on them must outlast an outage of
        # 15 minutes. Only the alerts on `up` itself, which is 0 then, need not.
        if "alert" in rule and not re.search(r'\bup\{', rule["expr"]):
            if minutes(rule.get("keep_firing_for", "0s")) < 15:
                failures.append(f"{rule['alert']}: keep_firing_for {rule.get('keep_firing_for')} is under 15m")
for name, dash in built["dashboards"].items():
    def walk(panels):
        global count
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                check(f"{name} panel {p['title']!r}", t["expr"])
                count += 1
    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            check(f"{name} variable {v['name']}", v["query"]["query"])
            count += 1
    if 'job="clouddevice"' in json.dumps(dash):
        failures.append(f"{name}: job=\"clouddevice\" is left")
for f in failures:
    print("mixin: FAIL", f)
print(f"mixin: {count} expressions checked, {len(failures)} without the selector")
sys.exit(1 if failures else 0)
PY
python3 -c 'import json, sys, yaml; yaml.safe_dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
  "$work/custom-rules.json" "$work/custom-rules.yml"
promtool check rules "$work/custom-rules.yml" >/dev/null
python3 dashboards/mixin/alerts_table.py --check
echo "mixin: all checks passed"
