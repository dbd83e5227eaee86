#!/usr/bin/env bash
# Checks dashboards/alertmanager/alertmanager.yml with amtool (Debian's prometheus-alertmanager,
# installed by .ci/run): the file loads, and every alert of dashboards/prometheus/alerts.yml is
# routed by its severity: critical to the pager, warning to tickets, info to no one. The inhibit
# rules are checked on a real Alertmanager by tests/e2e/e2e.py.
set -euo pipefail
cd "$(dirname "$0")/.."
config=dashboards/alertmanager/alertmanager.yml

echo "alertmanager: amtool check-config $config"
amtool check-config "$config"

echo "alertmanager: notifications are grouped by alert, target and region"
python3 - <<'PY'
import yaml
route = yaml.safe_load(open("dashboards/alertmanager/alertmanager.yml"))["route"]
assert route["group_by"] == ["alertname", "job", "instance", "account", "region"], route["group_by"]
PY

python3 - <<'PY' >"${TMPDIR:-/tmp}/clouddevice-alert-routes.txt"
import yaml
expected = {"critical": "clouddevice-pager", "warning": "clouddevice-tickets", "info": "null"}
for group in yaml.safe_load(open("dashboards/prometheus/alerts.yml"))["groups"]:
    for rule in group["rules"]:
        if "alert" in rule:
            severity = rule["labels"]["severity"]
            print(rule["alert"], severity, expected[severity])
PY
failures=0
while read -r alert severity receiver; do
  if amtool config routes test --config.file="$config" --verify.receivers="$receiver" \
      alertname="$alert" severity="$severity" region=cn-north-4 instance=exporter:10123 >/dev/null 2>&1; then
    echo "alertmanager: ok   $alert ($severity) goes to $receiver"
  else
    echo "alertmanager: FAIL $alert ($severity) does not go to $receiver"
    failures=$((failures + 1))
  fi
done <"${TMPDIR:-/tmp}/clouddevice-alert-routes.txt"
rm -f "${TMPDIR:-/tmp}/clouddevice-alert-routes.txt"
[ "$failures" -eq 0 ] || { echo "alertmanager: $failures routing check(s) failed"; exit 1; }
echo "alertmanager: all checks passed"
