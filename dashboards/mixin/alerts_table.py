#!/usr/bin/env python3
"""Writes the alert table of dashboards/README.md from the mixin and the Alertmanager example, so
that it cannot drift from the rules: each alert's severity, `for:` and `keep_firing_for:` as the
mixin's default _config sets them, when it fires and what it names (the `doc` of each alert in
alerts.libsonnet), and which alerts hold it back (the inhibit rules of
dashboards/alertmanager/alertmanager.yml). From the repository's top:

    python3 dashboards/mixin/alerts_table.py          # rewrites the table in dashboards/README.md
    python3 dashboards/mixin/alerts_table.py --check  # fails when the table differs (tests/mixin.sh)

Needs jsonnet and PyYAML.
"""
import json
import re
import subprocess
import sys

import yaml

README = "dashboards/README.md"
ALERTMANAGER = "dashboards/alertmanager/alertmanager.yml"
START = "<!-- alert table: written by dashboards/mixin/alerts_table.py; do not edit by hand -->"
END = "<!-- end of the alert table -->"

ALERTS = """
local mixin = import 'mixin.libsonnet';
[
  rule { doc::: super.doc }
  for group in mixin.prometheusAlerts.groups
  for rule in group.rules
]
"""


def matches(matcher, name):
    """Whether an Alertmanager matcher on alertname (`alertname=~"A|B"`) takes `name`."""
    m = re.fullmatch(r'\s*alertname\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
    if not m:
        return True  # a matcher on another label: this table does not tell labels apart
    op, value = m.groups()
    full = re.fullmatch(value, name) is not None if "~" in op else value == name
    return full != op.startswith("!")


def held_back_by(name, rules):
    sources = []
    for rule in rules:
        if all(matches(m, name) for m in rule.get("target_matchers", [])):
            for m in rule.get("source_matchers", []):
                source = re.fullmatch(r'\s*alertname\s*=\s*"(\w+)"\s*', m)
                if source and source.group(1) != name:
                    sources.append(f"`{source.group(1)}`")
    return ", ".join(sources)


def table():
    alerts = json.loads(subprocess.run(["jsonnet", "-J", "dashboards/mixin", "-e", ALERTS],
                                       check=True, capture_output=True, text=True).stdout)
    inhibit = yaml.safe_load(open(ALERTMANAGER)).get("inhibit_rules", [])
    rows = [
        "| alert | severity | fires when | for | kept firing | names | held back by |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a in alerts:
        cells = [f"`{a['alert']}`", a["labels"]["severity"], a["doc"]["when"], a["for"],
                 a.get("keep_firing_for", ""), a["doc"]["names"], held_back_by(a["alert"], inhibit)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def main():
    text = open(README).read()
    try:
        before, rest = text.split(START + "\n", 1)
        _, after = rest.split(END, 1)
    except ValueError:
        sys.exit(f"{README} lacks the markers {START!r} and {END!r}")
    new = before + START + "\n" + table() + "\n" + END + after
    if "--check" in sys.argv[1:]:
        if new != text:
            sys.exit(f"the alert table of {README} differs from the mixin's alerts; rewrite it:\n"
                     "  python3 dashboards/mixin/alerts_table.py")
        print(f"alerts_table: the alert table of {README} is the mixin's")
        return
    open(README, "w").write(new)


if __name__ == "__main__":
    main()
