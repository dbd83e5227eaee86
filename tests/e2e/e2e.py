#!/usr/bin/env python3
"""End-to-end check of the dashboards and alert rules against a real Prometheus.

Starts, on 127.0.0.1 only: the simulator (a fleet with frozen instances and failed backups),
three exporters scraping it (--collector.instance-metrics all, problems and none), all targets of
the job `clouddevice` the mixin's default selector reads, and Prometheus (Debian's package)
scraping them every second with dashboards/prometheus/alerts.yml loaded. The rules and the
dashboard are the files generated from dashboards/mixin (tests/mixin.sh checks they are). Then
checks that:
  - `promtool check rules` and `promtool test rules` pass;
  - every PromQL expression of dashboards/grafana/clouddevice-fleet.json, with its variables set
    to one target and a phone of the fleet, returns data in all mode, in problems mode and for an
    account of an accounts file, except the panels documented as empty there (the backup tables
    in problems mode) and those the fleet has nothing for (checked against the simulator);
  - CloudDeviceInstanceFrozen and CloudDeviceBackupFailed fire for exactly the instances the
    simulator froze or whose backup failed, read from the simulator's own API;
  - two more exporters on the same fleet, with --collector.instance-metrics=problems (and
    --collector.instance-name=info) and =none: in problems mode the per-instance alerts still
    name exactly those instances; in none mode the per-region alerts (CloudDeviceFrozenInRegion,
    CloudDeviceBackupsFailedInRegion) fire for exactly the regions concerned with the
    simulator's counts, and stay silent in all mode; CloudDeviceBackupsStaleInRegion fires per
    region with the simulator's counts in every mode, one alert per region;
  - CloudDeviceExporterDown fires once the exporter is stopped;
  - a second exporter, serving HTTPS with basic auth (--web.config.file), is scraped by
    Prometheus with `scheme: https`, `tls_config.ca_file` and `basic_auth`, and its target is up;
  - with a real Alertmanager, a frozen region (12 phones, over the count floor) is one
    notification, a frozen phone elsewhere is its own, and failed scrapes resolve nothing; nor
    does the exporter stopped for a while, whose CloudDeviceExporterDown holds back the rest;
  - many accounts: an exporter with an accounts file of three simulated accounts, discovered on
    /sd by two Prometheus shards from examples/sharding/prometheus-shard.yml: each account probed
    by exactly one shard, with the simulator's counts and its `account` label on every series;
    the dashboard's panels have data for an account, the version panel from the shards' second
    job on the exporter's /metrics; after SIGHUP with an account removed, the shards drop it;
    an account that never read its list shows as such in the dashboard's data age;
    after SIGHUP with a broken file, CloudDeviceExporterConfigReloadFailed fires.
The rules are loaded with every `for:` shortened to 2s, so the run takes seconds, not hours; the
real durations are covered by `promtool test rules`. Everything started is stopped by pid.

Usage: tests/e2e/e2e.py [path/to/clouddevice_exporter]
"""

import calendar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "dashboards", "prometheus", "alerts.yml")
RULE_TESTS = os.path.join(ROOT, "dashboards", "prometheus", "alerts_test.yml")
RUNBOOK = os.path.join(ROOT, "dashboards", "RUNBOOK.md")
ALERTMANAGER = os.path.join(ROOT, "dashboards", "alertmanager", "alertmanager.yml")
DASHBOARD = os.path.join(ROOT, "dashboards", "grafana", "clouddevice-fleet.json")
TOKEN = "e2e-token"
TLS_PASSWORD = "e2e-password"
# bcrypt of TLS_PASSWORD (cost 10), as a web config file stores it.
TLS_PASSWORD_HASH = "$2b$10$.rgP4Mc5dCY6AqpUO7vpKe70P.mgYu7rg7NODB1CZ0Y9f8UE8/gB6"
INSTANCES = 500
DEADLINE = time.monotonic() + 600  # the whole run, whatever happens

processes = []
failures = []


def log(msg):
    print(f"e2e: {msg}", flush=True)


def check(ok, what):
    log(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, args, workdir, env=None):
    out = open(os.path.join(workdir, f"{name}.log"), "w")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})})
    processes.append((name, p, out.name))
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def get(url, headers=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def wait_for(what, probe, limit=60):
    end = min(time.monotonic() + limit, DEADLINE)
    last = None
    while time.monotonic() < end:
        try:
            last = probe()
            if last:
                return last
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what} (last: {last!r})")


def simulator_rows(sim, token=TOKEN):
    """Every instance, read from the simulator's API like a client would."""
    rows, page = [], 1
    while True:
        query = urllib.parse.urlencode({"page_no": page, "page_size": 100, "x-request-id": str(uuid.uuid4())})
        body = json.loads(get(f"{sim}/v1/instances/batch-query?{query}", {"X-Auth-Token": token}))
        result = body["data"]["result"]
        if not result:
            return rows
        rows += result
        page += 1


def simulator_truth(sim):
    """Frozen and failed-backup instance ids."""
    rows = simulator_rows(sim)
    return ({r["instance_id"] for r in rows if r["frozen_status"] == 1},
            {r["instance_id"] for r in rows if r["backup_status"] == 3})


def backup_age(row, now):
    """Seconds since the row's backup_time (the simulator writes UTC), or None without one."""
    try:
        t = time.strptime(row["backup_time"], "%Y-%m-%d %H:%M:%S")
    except (ValueError, TypeError):
        return None
    return now - calendar.timegm(t)


def per_region(rows, keep):
    counts = {}
    for r in rows:
        if keep(r):
            counts[r["region"]] = counts.get(r["region"], 0) + 1
    return counts


def prom_query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(get(url))
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {body}")
    return body["data"]


def am_alerts(am_port, name):
    """Alertmanager's alerts of that name, with their state (active or suppressed)."""
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
    return json.loads(get(f"http://127.0.0.1:{am_port}/api/v2/alerts?{query}"))


def firing_since(prom):
    """Every alert firing in Prometheus, by its labels, with the moment it became active."""
    body = json.loads(get(f"{prom}/api/v1/alerts"))
    return {tuple(sorted(a["labels"].items())): a["activeAt"]
            for a in body["data"]["alerts"] if a["state"] == "firing"}


def alerts(prom, name, state="firing"):
    body = json.loads(get(f"{prom}/api/v1/alerts"))
    return [a for a in body["data"]["alerts"] if a["labels"].get("alertname") == name and a["state"] == state]


def dashboard_exprs(path, instance=".*", instance_id="", job="clouddevice"):
    """Every target expression of every panel, with the dashboard's variables set to one target
    (instance), one phone (instance_id) and every region and SKU."""
    dash = json.load(open(path))
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                expr = t["expr"]
                # The name box matches every named phone here (the table keeps 20); "yesterday"
                # does not exist in a run of a minute, so the change-since-yesterday panels are
                # checked against a second ago.
                for var, value in (("$__rate_interval", "1m"), ("$region", ".*"), ("$sku", ".*"), ("$job", job),
                                   ("$account", ".*"), ("$instance_id", instance_id), ("$instance", instance),
                                   ("$phone", ".+"), ("offset 1d", "offset 1s")):
                    expr = expr.replace(var, value)
                out.append((p["title"], expr))

    walk(dash["panels"])
    return dash, out


def panel_titles(rows):
    """The panels that must be empty for a fleet of these rows (it has nothing they list)."""
    now = time.time()
    has = {
        "Frozen instances": any(r["frozen_status"] == 1 for r in rows),
        "Failed backups (": any(r["backup_status"] == 3 for r in rows),
        "Failed restores": any(r["restore_status"] == 3 for r in rows),
        "No backup time": any(backup_age(r, now) is None for r in rows),
        "Backups older than 7 days (": any((backup_age(r, now) or 0) > 7 * 86400 for r in rows),
    }
    return {prefix for prefix, present in has.items() if not present}


def check_panels(prom, mode, exprs, empty_by_design, nothing_to_show):
    """Every panel has data, except those documented as empty in this mode (which must be empty)
    and those the fleet has nothing for."""
    for title, expr in exprs:
        result = prom_query(prom, expr)["result"]
        if any(title.startswith(p) for p in empty_by_design):
            check(result == [], f"{mode}: panel {title!r} is empty, as documented for this mode")
        elif any(title.startswith(p) for p in nothing_to_show):
            check(result == [], f"{mode}: panel {title!r} is empty: the fleet has none")
        else:
            check(len(result) > 0, f"{mode}: panel {title!r} has data: {expr}")


def scaled_rules():
    """alerts.yml with every `for:` and `keep_firing_for:` a minute to a second, so the run takes
    seconds and the durations keep their order (a region freeze fires before its phones do)."""
    def seconds(m):
        value, unit = int(m.group(2)), m.group(3)
        return f"{m.group(1)}{value * {'s': 1, 'm': 60, 'h': 3600}[unit] // 60 or 1}s"
    scaled, n = re.subn(r'(?m)^(\s+(?:for|keep_firing_for):\s*)"?(\d+)([smh])"?\s*$', seconds, open(RULES).read())
    if n < 10:
        raise RuntimeError(f"only {n} durations scaled in {RULES}: has its format changed?")
    return scaled


class TextOnly:
    """What Prometheus 2.49's `scrape_protocols: [PrometheusText0.0.4]` does, for the 2.42 that
    CI has: a pass-through on 127.0.0.1 that asks the exporter for the text format whatever the
    scraper's `Accept` says, so that a real Prometheus ingests that format too."""

    def __init__(self, upstream):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                headers = {"Accept": "text/plain;version=0.0.4"}
                timeout = self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
                if timeout:
                    headers["X-Prometheus-Scrape-Timeout-Seconds"] = timeout
                req = urllib.request.Request(upstream + self.path, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, body, kind = r.status, r.read(), r.headers["Content-Type"]
                except urllib.error.HTTPError as e:
                    status, body, kind = e.code, e.read(), e.headers.get("Content-Type", "text/plain")
                except OSError as e:
                    # The exporter is down (the test stops it on purpose): a failed scrape, as
                    # Prometheus would see it asking directly, not a traceback in the log.
                    status, body, kind = 502, f"{e}\n".encode(), "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Webhook:
    """A webhook receiver for Alertmanager on 127.0.0.1: keeps every notification it is sent."""

    def __init__(self):
        import http.server
        import threading
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notifications(self, alertname, region=None):
        return [n for n in list(self.received) if n["groupLabels"].get("alertname") == alertname
                and (region is None or n["groupLabels"].get("region") == region)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


FROZEN_REGION = "cn-south-1"
# With --trouble-percent 5 --frozen-region cn-south-1, seed 23 gives an 80-phone fleet with 12
# phones in cn-south-1 (over the region alert's floor of 10) and exactly one frozen phone
# elsewhere (checked below, from the API).
AM_SEED, AM_INSTANCES = "23", "80"


def alertmanager_run(binary, work):
    """The shipped rules (durations scaled) in a real Prometheus, the example Alertmanager
    configuration (timings scaled, receivers pointed at a local webhook), on a fleet with one
    region frozen as a whole and one frozen phone elsewhere. Then a run of failed scrapes."""
    hook = Webhook()
    try:
        sim_port, exp_port, prom_port, am_port = free_port(), free_port(), free_port(), free_port()
        sim, prom = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{prom_port}"
        sim_args = [binary, "simulate", "--listen-address", f"127.0.0.1:{sim_port}", "--instances", AM_INSTANCES,
                    "--seed", AM_SEED, "--trouble-percent", "5", "--frozen-region", FROZEN_REGION]
        simulator = start("am-simulator", sim_args, work)
        # Scrapes every second, so no reuse window (10 s by default, below any real scrape
        # interval): the outage below must end for Prometheus when the simulator is back.
        exporter_args = [binary, "--web.listen-address", f"127.0.0.1:{exp_port}", "--clouddevice.endpoint", sim,
                         "--clouddevice.auth-token-file", os.path.join(work, "token"),
                         "--scrape.min-interval=0s"]
        exporter = start("am-exporter", exporter_args, work)
        am_dir = os.path.join(work, "am")
        os.makedirs(am_dir)
        config = open(ALERTMANAGER).read()
        config = config.replace("http://127.0.0.1:9095", hook.url)
        config = re.sub(r"group_wait: \S+", "group_wait: 1s", config)
        config = re.sub(r"group_interval: \S+", "group_interval: 2s", config)
        with open(os.path.join(am_dir, "alertmanager.yml"), "w") as f:
            f.write(config)
        start("alertmanager", ["prometheus-alertmanager", f"--config.file={am_dir}/alertmanager.yml",
                               f"--storage.path={am_dir}/data", f"--web.listen-address=127.0.0.1:{am_port}",
                               "--cluster.listen-address=", "--log.level=warn"], work)
        with open(os.path.join(am_dir, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{work}/alerts.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: clouddevice
    static_configs:
      - targets: ["127.0.0.1:{exp_port}"]
""")
        start("am-prometheus", ["prometheus", f"--config.file={am_dir}/prometheus.yml",
                                f"--storage.tsdb.path={am_dir}/prom", f"--web.listen-address=127.0.0.1:{prom_port}",
                                "--log.level=warn"], work)

        rows = wait_for("the alerting simulator", lambda: simulator_rows(sim))
        in_region = {r["instance_id"] for r in rows if r["region"] == FROZEN_REGION}
        elsewhere = {r["instance_id"]: r["region"] for r in rows if r["region"] != FROZEN_REGION and r["frozen_status"] == 1}
        check(len(in_region) >= 10 and all(r["frozen_status"] == 1 for r in rows if r["region"] == FROZEN_REGION)
              and len(elsewhere) == 1,
              f"the fleet has {FROZEN_REGION} frozen ({len(in_region)} phones) and one frozen phone elsewhere ({elsewhere})")
        (phone, phone_region), = elsewhere.items() or [(None, None)]

        try:
            wait_for("the region notification", lambda: hook.notifications("CloudDeviceRegionFrozen", FROZEN_REGION), limit=60)
            wait_for("the phone notification", lambda: hook.notifications("CloudDeviceInstanceFrozen", phone_region), limit=60)
        except RuntimeError as e:
            check(False, f"notifications arrive ({e}; got {[n['groupLabels'] for n in hook.received]})")
            return
        # Alertmanager itself says the region's phones are held back by the region's alert: from
        # then on none of them can be notified, and the notifications so far are all there are.
        def region_held():
            of_region = [a for a in am_alerts(am_port, "CloudDeviceInstanceFrozen")
                         if a["labels"].get("region") == FROZEN_REGION]
            held = [a for a in of_region if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]]
            return held if len(of_region) == len(held) == len(in_region) else None
        wait_for("the region's phones held back by CloudDeviceRegionFrozen", region_held, limit=30)
        region = hook.notifications("CloudDeviceRegionFrozen", FROZEN_REGION)
        check(len(region) == 1 and len(region[0]["alerts"]) == 1 and region[0]["status"] == "firing",
              f"a region-wide freeze gives one region notification ({len(region)} received)")
        check(not hook.notifications("CloudDeviceInstanceFrozen", FROZEN_REGION),
              f"and no per-phone notification for the {len(in_region)} phones of the region (inhibited)")
        firing = {a["labels"].get("instance_id") for a in alerts(prom, "CloudDeviceInstanceFrozen")}
        check(firing == in_region | {phone},
              "Prometheus itself fires CloudDeviceInstanceFrozen for every frozen phone; Alertmanager holds back the region's")
        single = hook.notifications("CloudDeviceInstanceFrozen", phone_region)
        check(len(single) == 1 and [a["labels"]["instance_id"] for a in single[0]["alerts"]] == [phone],
              f"a frozen phone gives one notification naming it ({len(single)} received)")

        # A run of failed scrapes, shorter than keep_firing_for (10 minutes, 10 s here): the
        # exporter answers clouddevice_up 0 and no phones, and Prometheus marks their series stale.
        before = len(hook.received)
        # An alert that resolved and fired again would be a new one, active since later.
        active_since = firing_since(prom)
        stop(simulator)
        # Four failed scrapes on record, as Prometheus itself counts them.
        wait_for("four failed scrapes", lambda: [r for r in prom_query(
            prom, "count_over_time((clouddevice_up == 0)[30s:1s])")["result"] if float(r["value"][1]) >= 4], limit=20)
        start("am-simulator-again", sim_args, work)
        wait_for("scrapes to succeed again", lambda: prom_query(prom, "clouddevice_up == 1")["result"], limit=20)
        # Rules are evaluated on the data at hand: once scrapes succeed, no alert of the fleet can
        # resolve. Every one firing before is still firing, active since the same moment.
        after = firing_since(prom)
        changed = [dict(k).get("alertname") for k, at in active_since.items() if after.get(k) != at]
        check(not changed, f"the failed scrapes resolved no alert in Prometheus ({changed})")
        later = hook.received[before:]
        resolved = [n["groupLabels"] for n in later if n["status"] == "resolved"
                    or any(a["status"] == "resolved" for a in n["alerts"])]
        check(not resolved, f"a run of failed scrapes sends no resolved notification ({resolved})")
        check(not [n for n in later if n["groupLabels"].get("alertname") == "CloudDeviceInstanceFrozen"],
              "nor a repeated per-phone notification")

        # The exporter down for a few seconds (minutes, scaled; keep_firing_for is 20): Prometheus
        # marks every series stale and up 0. CloudDeviceExporterDown fires and holds back the
        # rest (inhibited in Alertmanager, still firing in Prometheus); nothing else resolves.
        before = len(hook.received)
        stop(exporter)
        wait_for("CloudDeviceExporterDown", lambda: hook.notifications("CloudDeviceExporterDown"), limit=20)

        def suppressed():
            held = am_alerts(am_port, "CloudDeviceInstanceFrozen")
            return held if held and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held) else None
        held = wait_for("the phones' alerts held back by CloudDeviceExporterDown", suppressed, limit=20)
        check(len(held) == len(in_region | {phone}),
              f"while the exporter is down its {len(held)} frozen phones stay firing, inhibited by CloudDeviceExporterDown")
        start("am-exporter-again", exporter_args, work)
        wait_for("the exporter to be scraped again", lambda: prom_query(prom, "up{job=\"clouddevice\"} == 1")["result"], limit=20)
        # The outage's own end: a resolved CloudDeviceExporterDown. Any alert the outage had
        # resolved would have been sent before it (they resolve as the series go stale, and
        # are not held back until ExporterDown fires).
        wait_for("CloudDeviceExporterDown to be resolved", lambda: [
            n for n in hook.received[before:] if n["groupLabels"].get("alertname") == "CloudDeviceExporterDown"
            and n["status"] == "resolved"], limit=30)
        firing = {a["labels"].get("instance_id") for a in alerts(prom, "CloudDeviceInstanceFrozen")}
        check(firing == in_region | {phone}, "after the outage every frozen phone's alert is firing, none pending again")
        later = hook.received[before:]
        resolved = [n["groupLabels"] for n in later if n["groupLabels"].get("alertname") != "CloudDeviceExporterDown"
                    and (n["status"] == "resolved" or any(a["status"] == "resolved" for a in n["alerts"]))]
        check(not resolved, f"an exporter outage shorter than keep_firing_for resolves nothing but itself ({resolved})")
    finally:
        hook.close()


SHARDING = os.path.join(ROOT, "examples", "sharding", "prometheus-shard.yml")


def accounts_run(binary, work):
    """Many accounts: a simulator of three accounts, one exporter with an accounts file, and two
    Prometheus shards from examples/sharding/prometheus-shard.yml that discover the accounts on
    /sd and split them by hashmod. Then SIGHUP with an account removed."""
    import yaml
    sim_port, exp_port = free_port(), free_port()
    sim, exporter_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{exp_port}"
    start("accounts-simulator", [binary, "simulate", "--listen-address", f"127.0.0.1:{sim_port}",
                                 "--accounts", "3", "--instances", "60", "--seed", "20"], work)
    accounts = {f"account-{k}": f"sim-account-{k}" for k in (1, 2, 3)}
    entries = {}
    for name, token in accounts.items():
        path = os.path.join(work, f"{name}.token")
        with open(path, "w") as f:
            f.write(token)
        os.chmod(path, 0o600)
        entries[name] = f"  {name}:\n    endpoint: {sim}\n    token_file: {path}\n"
    config = os.path.join(work, "accounts.yml")
    with open(config, "w") as f:
        f.write("accounts:\n" + "".join(entries.values()))
    exporter = start("accounts-exporter", [binary, "--web.listen-address", f"127.0.0.1:{exp_port}",
                                           "--config.file", config], work)
    truth = {name: len(wait_for(f"{name} in the simulator", lambda t=token: simulator_rows(sim, t)))
             for name, token in accounts.items()}
    check(len(set(truth.values())) == 1 and truth["account-1"] == 60, f"each simulated account has its fleet ({truth})")
    # Each account's own fleet, by region: the fleets differ (different seeds).
    by_region = {name: per_region(simulator_rows(sim, token), lambda r: True) for name, token in accounts.items()}
    check(len({json.dumps(v, sort_keys=True) for v in by_region.values()}) == 3, "the accounts' fleets differ")

    shards = []
    for shard in ("0", "1"):
        prom_port = free_port()
        shard_config = yaml.safe_load(open(SHARDING))
        shard_config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s"})
        shard_config["global"]["external_labels"]["shard"] = shard
        job = shard_config["scrape_configs"][0]
        job["http_sd_configs"][0].update({"url": f"{exporter_url}/sd", "refresh_interval": "1s"})
        job["relabel_configs"][-1]["regex"] = shard
        own = shard_config["scrape_configs"][1]
        own["static_configs"] = [{"targets": [f"127.0.0.1:{exp_port}"]}]
        if shard == "0":
            shard_config["global"]["evaluation_interval"] = "1s"
            shard_config["rule_files"] = [f"{work}/alerts.yml"]
        shard_dir = os.path.join(work, f"shard-{shard}")
        os.makedirs(shard_dir)
        with open(os.path.join(shard_dir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(shard_config, f)
        start(f"prometheus-shard-{shard}", ["prometheus", f"--config.file={shard_dir}/prometheus.yml",
                                            f"--storage.tsdb.path={shard_dir}/data",
                                            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], work)
        shards.append(f"http://127.0.0.1:{prom_port}")

    def probed():
        """The accounts each shard probes successfully."""
        return [{r["metric"]["account"] for r in prom_query(p, 'clouddevice_up{job="clouddevice"} == 1')["result"]}
                for p in shards]

    try:
        wait_for("both shards to probe every account", lambda: set().union(*probed()) == set(accounts), limit=60)
    except RuntimeError as e:
        check(False, f"the shards discover and probe every account ({e})")
        return
    split = probed()
    check(not (split[0] & split[1]) and split[0] | split[1] == set(accounts),
          f"hashmod gives each account to exactly one shard ({[sorted(s) for s in split]})")
    for shard, mine in zip(shards, split):
        for name in mine:
            total = prom_query(shard, f'sum(clouddevice_instances{{account="{name}"}})')["result"]
            check([float(r["value"][1]) for r in total] == [truth[name]],
                  f"{name}: Prometheus has the simulator's {truth[name]} instances, with its account label")
            regions = {r["metric"]["region"]: int(float(r["value"][1])) for r in
                       prom_query(shard, f'sum by (region) (clouddevice_instances{{account="{name}"}})')["result"]}
            check(regions == by_region[name], f"{name}: per region as the simulator has it ({regions})")
            instance = prom_query(shard, f'clouddevice_up{{account="{name}"}}')["result"]
            check([r["metric"]["instance"] for r in instance] == [name], f"{name} is its own instance")
        unlabelled = prom_query(shard, 'count({job="clouddevice", account=""})')["result"]
        check(unlabelled == [], f"every series of a probe carries its account label ({unlabelled})")

    # The dashboard for one account, on the shard that probes it; the version panel reads the
    # shard's second job, on the exporter's /metrics.
    name = sorted(split[0])[0] if split[0] else None
    rows = simulator_rows(sim, accounts[name]) if name else []
    frozen_phones = sorted(r["instance_id"] for r in rows if r["frozen_status"] == 1)
    check(name is not None and frozen_phones, f"shard 0 probes an account with a frozen phone ({name})")
    if name and frozen_phones:
        wait_for("rates on shard 0", lambda: prom_query(shards[0], f'rate(clouddevice_exporter_api_requests_total{{instance="{name}"}}[1m]) > 0')["result"], limit=30)
        _, exprs = dashboard_exprs(DASHBOARD, instance=name, instance_id=frozen_phones[0])
        check_panels(shards[0], f"accounts file ({name})", exprs, set(), panel_titles(rows))

    # Per-region alerts keep the account: stale backups, pending at once on shard 0's rules.
    def stale_alerts():
        return [a for state in ("pending", "firing") for a in alerts(shards[0], "CloudDeviceBackupsStaleInRegion", state)]
    try:
        wait_for("stale-backup alerts on shard 0", stale_alerts, limit=20)
        labelled = {(a["labels"].get("account"), a["labels"].get("instance")) for a in stale_alerts()}
        check(labelled and all(acc == inst and acc in split[0] for acc, inst in labelled),
              f"per-region alerts carry the account they are about ({sorted(labelled)})")
    except RuntimeError as e:
        check(False, f"per-region alerts carry the account ({e})")

    # SIGHUP with account-3 removed: the exporter stops serving it, and the shards drop it.
    with open(config, "w") as f:
        f.write("accounts:\n" + entries["account-1"] + entries["account-2"])
    exporter.send_signal(signal.SIGHUP)

    def targets():
        return {t["labels"]["account"] for p in shards
                for t in json.loads(get(f"{p}/api/v1/targets"))["data"]["activeTargets"]
                if t["labels"]["job"] == "clouddevice"}

    try:
        wait_for("the shards to drop account-3", lambda: targets() == {"account-1", "account-2"}, limit=30)
        check(True, "after SIGHUP the removed account is dropped by service discovery")
    except RuntimeError:
        check(False, f"after SIGHUP the shards probe {sorted(targets())}, expected account-1 and account-2")

    # An account whose token is wrong never reads its list: the dashboard's data age says so
    # ("never read", -1), beside the ages of the accounts that read theirs.
    path = os.path.join(work, "account-4.token")
    with open(path, "w") as f:
        f.write("not-a-token-of-the-simulator")
    os.chmod(path, 0o600)
    with open(config, "w") as f:
        f.write("accounts:\n" + entries["account-1"] + entries["account-2"]
                + f"  account-4:\n    endpoint: {sim}\n    token_file: {path}\n")
    exporter.send_signal(signal.SIGHUP)
    _, exprs = dashboard_exprs(DASHBOARD)
    (age,) = [expr for title, expr in exprs if title == "Age of the data"]

    def ages():
        got = {}
        for shard in shards:
            for r in prom_query(shard, age)["result"]:
                got[r["metric"].get("instance")] = float(r["value"][1])
        return got if {"account-1", "account-2", "account-4"} <= set(got) else None
    try:
        got = wait_for("the data age of every account", ages, limit=30)
        check(got["account-4"] == -1 and 0 <= got["account-1"] < 60 and 0 <= got["account-2"] < 60,
              f"'Age of the data' shows every account, one that never read its list as -1, 'never read' ({got})")
    except RuntimeError as e:
        check(False, f"'Age of the data' shows every account ({e})")

    # A broken file on SIGHUP: the exporter keeps its accounts and says so in
    # clouddevice_exporter_config_last_reload_successful, which the alert reads.
    with open(config, "w") as f:
        f.write("accounts:\n  account-1: [this is not an account\n")
    exporter.send_signal(signal.SIGHUP)
    try:
        wait_for("CloudDeviceExporterConfigReloadFailed", lambda: alerts(shards[0], "CloudDeviceExporterConfigReloadFailed"), limit=40)
        check(True, "a refused accounts file fires CloudDeviceExporterConfigReloadFailed")
    except RuntimeError:
        check(False, "a refused accounts file fires CloudDeviceExporterConfigReloadFailed")


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def check_formats(prom, exporter_url):
    """Both formats of a whole scrape (hostile names included) are valid: OpenMetrics by the
    reference parser (the Python client's), the text format by `promtool check metrics`; and a
    real Prometheus ingests both, OpenMetrics (the units it knows come only from `# UNIT` lines)
    and the text format."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    om = get(f"{exporter_url}/metrics", headers={"Accept": PROMETHEUS_ACCEPT}).decode()
    try:
        families = list(text_string_to_metric_families(om))
        samples = sum(len(f.samples) for f in families)
        counters = [f.name for f in families if f.type == "counter"]
        check(samples > INSTANCES and counters and all(not n.endswith("_total") for n in counters),
              f"the OpenMetrics answer parses: {len(families)} families, {samples} samples, counters named without _total")
    except ValueError as e:
        check(False, f"the OpenMetrics answer parses ({e})")
    text = get(f"{exporter_url}/metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    check(lint.returncode == 0, f"promtool check metrics accepts the text format ({lint.stdout.decode()[:300]})")
    # Per target: OpenMetrics from the exporter itself (Prometheus asks for it first), the text
    # format through TextOnly. Only OpenMetrics carries units.
    def units():
        got = json.loads(get(f"{prom}/api/v1/targets/metadata?metric=clouddevice_scrape_duration_seconds"))["data"]
        by_job = {m["target"]["job"]: m.get("unit", "") for m in got}
        return by_job if {"clouddevice", "clouddevice-text"} <= set(by_job) else None
    by_job = wait_for("per-target metadata from Prometheus", units)
    check(by_job["clouddevice"] == "seconds" and by_job["clouddevice-text"] == "",
          f"Prometheus ingests both formats: OpenMetrics (with units) from the exporter, text 0.0.4 through a text-only pass-through ({by_job})")
    text_up = prom_query(prom, 'clouddevice_up{job="clouddevice-text"} == 1')["result"]
    check(len(text_up) == 1, f"the text-format target reads the whole list ({text_up})")


def check_runbook_urls():
    """Every alert has a summary, a description and a runbook_url to a section of RUNBOOK.md."""
    import yaml
    rules = yaml.safe_load(open(RULES))
    headings = {line[3:].strip().lower() for line in open(RUNBOOK) if line.startswith("## ")}
    prefix = "https://github.com/clouddevice-exporter/clouddevice_exporter/blob/main/dashboards/RUNBOOK.md#"
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            notes = rule.get("annotations", {})
            url = notes.get("runbook_url", "")
            check(set(notes) == {"summary", "description", "runbook_url"}
                  and url.startswith(prefix) and url[len(prefix):] in headings
                  and url[len(prefix):] == rule["alert"].lower(),
                  f"{rule['alert']} has a summary, a description and a runbook_url to its RUNBOOK.md section")
    alerts = {rule["alert"].lower() for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    linked = set()

    def walk(panels):
        for panel in panels:
            walk(panel.get("panels", []))
            for link in panel.get("links", []):
                url = link["url"]
                anchor = url[len(prefix):]
                linked.add(anchor)
                check(url.startswith(prefix) and anchor in headings and anchor in alerts,
                      f"panel {panel['title']!r} links to the RUNBOOK.md section of an alert ({anchor})")
    walk(json.load(open(DASHBOARD))["panels"])
    # No panel shows a missing job, the token's expiry or the reload state.
    unshown = {"clouddeviceexportermissing", "clouddevicetokenexpiringsoon", "clouddeviceexporterconfigreloadfailed"}
    check(alerts - linked == unshown,
          f"every alert on what a panel shows has a panel linking to its runbook (none: {sorted(alerts - linked)})")


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "clouddevice_exporter"))
    for tool, package in (("prometheus", "prometheus"), ("promtool", "prometheus"),
                          ("prometheus-alertmanager", "prometheus-alertmanager")):
        if not shutil.which(tool):
            sys.exit(f"e2e: {tool} is missing; install Debian's {package} package (.ci/run does)")
    work = tempfile.mkdtemp(prefix="clouddevice-e2e-")
    try:
        check(subprocess.run(["promtool", "check", "rules", RULES]).returncode == 0, "promtool check rules")
        check(subprocess.run(["promtool", "test", "rules", RULE_TESTS]).returncode == 0, "promtool test rules")

        check_runbook_urls()

        dash, _ = dashboard_exprs(DASHBOARD)
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        check(all(p.get("description") for p in panels), "every panel has a description")
        check([i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
              and dash["templating"]["list"][0]["current"]["value"] == "${DS_PROMETHEUS}",
              "an import asks for the Prometheus data source (__inputs), which the datasource variable starts on")
        uids = set(re.findall(r'"uid":\s*"([^"]*)"', json.dumps(dash["panels"])))
        check(uids == {"${datasource}"}, f"panels use only the ${{datasource}} variable, no fixed uid ({uids})")

        sim_port, exp_port, prom_port, tls_port = free_port(), free_port(), free_port(), free_port()
        problems_port, none_port = free_port(), free_port()
        sim, exporter_url, prom = (f"http://127.0.0.1:{p}" for p in (sim_port, exp_port, prom_port))
        token_file = os.path.join(work, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        os.chmod(token_file, 0o600)
        start("simulator", [binary, "simulate", "--listen-address", f"127.0.0.1:{sim_port}",
                            "--instances", str(INSTANCES), "--seed", "7", "--auth-token-file", token_file], work)
        exporter = start("exporter", [binary, "--web.listen-address", f"127.0.0.1:{exp_port}",
                                      "--clouddevice.endpoint", sim,
                                      "--clouddevice.auth-token-file", token_file], work)
        start("exporter-problems", [binary, "--web.listen-address", f"127.0.0.1:{problems_port}",
                                    "--clouddevice.endpoint", sim, "--clouddevice.auth-token-file", token_file,
                                    "--collector.instance-metrics=problems", "--collector.instance-name=info"], work)
        start("exporter-none", [binary, "--web.listen-address", f"127.0.0.1:{none_port}",
                                "--clouddevice.endpoint", sim, "--clouddevice.auth-token-file", token_file,
                                "--collector.instance-metrics=none"], work)

        # A self-signed certificate for 127.0.0.1, trusted by Prometheus as its own CA.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
                        "-keyout", os.path.join(work, "server.key"), "-out", os.path.join(work, "server.crt")],
                       check=True, capture_output=True)
        with open(os.path.join(work, "web.yml"), "w") as f:
            f.write(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    f"basic_auth_users:\n  prometheus: {TLS_PASSWORD_HASH}\n")
        start("exporter-tls", [binary, "--demo", "--web.listen-address", f"127.0.0.1:{tls_port}",
                               "--web.config.file", os.path.join(work, "web.yml")], work)

        text_only = TextOnly(exporter_url)
        with open(os.path.join(work, "alerts.yml"), "w") as f:
            f.write(scaled_rules())
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: clouddevice
    static_configs:
      - targets: ["127.0.0.1:{exp_port}", "127.0.0.1:{problems_port}", "127.0.0.1:{none_port}"]
  - job_name: clouddevice-text
    static_configs:
      - targets: ["{text_only.address}"]
  - job_name: clouddevice-tls
    scheme: https
    tls_config:
      ca_file: {work}/server.crt
    basic_auth:
      username: prometheus
      password: {TLS_PASSWORD}
    static_configs:
      - targets: ["127.0.0.1:{tls_port}"]
""")
        start("prometheus", ["prometheus", f"--config.file={work}/prometheus.yml",
                             f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--log.level=warn"], work)

        wait_for("the simulator", lambda: simulator_truth(sim))
        frozen, failed = simulator_truth(sim)
        log(f"the simulator froze {len(frozen)} instances and failed {len(failed)} backups")
        check(len(frozen) > 0 and len(failed) > 0, "the fleet has frozen instances and failed backups")
        wait_for("Prometheus to scrape the exporter",
                 lambda: prom_query(prom, 'clouddevice_up{job="clouddevice"} == 1')["result"])
        # A few scrapes, so that rates and the recording rules have samples.
        wait_for("rates and recording rules", lambda: prom_query(
            prom, "rate(clouddevice_exporter_api_requests_total[1m]) > 0 and on () count(region:clouddevice_instances:sum) > 0")["result"],
            limit=30)

        check_formats(prom, exporter_url)

        for var in ("region", "sku"):
            values = prom_query(prom, f"group by ({var}) (clouddevice_instances)")["result"]
            check(len(values) > 0, f"the ${var} variable has values to choose from")
        # The dashboard for one target at a time, its phone timeline on a frozen phone.
        all_target, problems_target, none_target = (f"127.0.0.1:{p}" for p in (exp_port, problems_port, none_port))
        phone = sorted(frozen)[0]
        nothing = panel_titles(simulator_rows(sim))
        for mode, target, empty in (("all mode", all_target, set()),
                                    ("problems mode", problems_target,
                                     {"Oldest successful backups", "Backups older than 7 days (", "No backup time"})):
            wait_for(f"{mode} to have a scrape with rates",
                     lambda t=target: prom_query(prom, f'rate(clouddevice_exporter_api_requests_total{{instance="{t}"}}[1m]) > 0')["result"],
                     limit=30)
            _, exprs = dashboard_exprs(DASHBOARD, instance=target, instance_id=phone)
            check_panels(prom, mode, exprs, empty, nothing)

        def tls_target_up():
            targets = json.loads(get(f"{prom}/api/v1/targets"))["data"]["activeTargets"]
            return [t for t in targets if t["labels"]["job"] == "clouddevice-tls" and t["health"] == "up"]

        try:
            wait_for("the HTTPS target", tls_target_up, limit=30)
            check(True, "Prometheus scrapes the exporter over HTTPS with basic auth")
        except RuntimeError as e:
            check(False, f"Prometheus scrapes the exporter over HTTPS with basic auth ({e})")

        def firing_ids(name, target):
            return {a["labels"].get("instance_id") for a in alerts(prom, name) if a["labels"].get("instance") == target}

        for job in (all_target, problems_target):
            for name, expected in (("CloudDeviceInstanceFrozen", frozen), ("CloudDeviceBackupFailed", failed)):
                try:
                    wait_for(f"{name} to fire in {job}", lambda: firing_ids(name, job) == expected, limit=30)
                    check(True, f"{name} fires for exactly the {len(expected)} instances the simulator has ({job})")
                except RuntimeError:
                    check(False, f"{name} fires for {sorted(firing_ids(name, job))} in {job}, expected {sorted(expected)}")

        # The per-region alerts, against counts read from the simulator. A backup within a few
        # minutes of the 7-day bound may cross it during the run: it may be counted either way.
        rows = simulator_rows(sim)
        now = time.time()
        week, slack = 7 * 86400, 600
        sure_stale = per_region(rows, lambda r: backup_age(r, now) is None or backup_age(r, now) > week + slack)
        maybe_stale = per_region(rows, lambda r: backup_age(r, now) is not None and abs(backup_age(r, now) - week) <= slack)
        region_expectations = (
            ("CloudDeviceFrozenInRegion", per_region(rows, lambda r: r["frozen_status"] == 1), {}),
            ("CloudDeviceBackupsFailedInRegion", per_region(rows, lambda r: r["backup_status"] == 3), {}),
        )

        def region_values(name, target):
            return {a["labels"]["region"]: float(a["value"]) for a in alerts(prom, name) if a["labels"].get("instance") == target}

        def matches(got, sure, maybe):
            regions = set(sure) | set(maybe)
            return set(got) <= regions and set(sure) <= set(got) and all(
                sure.get(r, 0) <= v <= sure.get(r, 0) + maybe.get(r, 0) for r, v in got.items())

        for name, sure, maybe in region_expectations:
            check(len(sure) > 0, f"the fleet has instances for {name}")
            try:
                wait_for(f"{name} to fire", lambda: matches(region_values(name, none_target), sure, maybe), limit=30)
                check(True, f"{name} fires per region with the simulator's counts ({sure}) with --collector.instance-metrics=none")
            except RuntimeError:
                check(False, f"{name} fires with {region_values(name, none_target)}, expected {sure} (+ up to {maybe})")
            for mode, target in (("all", all_target), ("problems", problems_target)):
                quiet = [a for state in ("pending", "firing") for a in alerts(prom, name, state)
                         if a["labels"].get("instance") == target]
                check(not quiet, f"{name} stays silent in {mode} mode, where per-instance alerts name the phones")

        # Stale backups: one alert per region in every mode, with the simulator's counts, once
        # the `for:` (an hour, a minute here) has passed.
        name = "CloudDeviceBackupsStaleInRegion"
        check(len(sure_stale) > 0, f"the fleet has instances for {name}")
        for mode, target in (("all", all_target), ("problems", problems_target), ("none", none_target)):
            try:
                wait_for(f"{name} to fire in {mode} mode",
                         lambda t=target: matches(region_values(name, t), sure_stale, maybe_stale), limit=100)
                check(True, f"{name} fires per region with the simulator's counts ({sure_stale}) in {mode} mode")
            except RuntimeError:
                check(False, f"{name} fires with {region_values(name, target)} in {mode} mode, expected {sure_stale} (+ up to {maybe_stale})")
            per_phone = [a for a in alerts(prom, name) if a["labels"].get("instance") == target and "instance_id" in a["labels"]]
            check(not per_phone, f"{name} never names a phone ({len(per_phone)} alerts do) in {mode} mode")
        check(not alerts(prom, "CloudDeviceExporterDown") and not alerts(prom, "CloudDeviceScrapeFailing"),
              "the exporter alerts are silent while it serves")

        stop(exporter)
        try:
            wait_for("CloudDeviceExporterDown to fire", lambda: alerts(prom, "CloudDeviceExporterDown"), limit=30)
            check(True, "CloudDeviceExporterDown fires when the exporter is stopped")
        except RuntimeError:
            check(False, "CloudDeviceExporterDown fires when the exporter is stopped")

        # The overview's stat panels, for the stopped exporter: red, and no old numbers.
        stats = {p["title"]: p["targets"][0]["expr"].replace("$job", "clouddevice").replace("$instance", all_target)
                 .replace("$account", ".*").replace("$region", ".*").replace("$sku", ".*")
                 for p in dash["panels"] if p["type"] == "stat"}
        up_now = prom_query(prom, stats["Exporter up"])["result"]
        check([r["value"][1] for r in up_now] == ["0"], f"the 'Exporter up' panel shows 0 for a stopped exporter ({up_now})")
        frozen_now = prom_query(prom, stats["Frozen"])["result"]
        check(frozen_now == [], f"the 'Frozen' panel shows no data for a stopped exporter, not its last count ({frozen_now})")

        log("with a real Alertmanager: a frozen region, a frozen phone, failed scrapes")
        alertmanager_run(binary, work)

        log("many accounts: an accounts file, service discovery, two hashmod shards, a reload")
        accounts_run(binary, work)
    except Exception as e:
        check(False, f"the run itself: {e}")
    finally:
        for name, p, logfile in processes:
            stop(p)
        if failures:
            for name, p, logfile in processes:
                print(f"--- {name} log (last lines)")
                print("".join(open(logfile).readlines()[-20:]))
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"e2e: {len(failures)} check(s) failed")
        sys.exit(1)
    print("e2e: all checks passed")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
