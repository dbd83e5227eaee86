#!/usr/bin/env python3
"""Runs the shell blocks of the README and docs/ as a reader would (run by .ci/run).

Every ```sh block of README.md, docs/*.md and dashboards/README.md carries, on the line before
it, an HTML comment that says how it is checked:

    <!-- docs: run -->                     runs to completion, exit 0, in an empty folder
    <!-- docs: run in the repository -->   the same, from the repository's top
    <!-- docs: serve URL -->               runs until URL answers 200 (at most 10 minutes),
                                           then is stopped: a server the reader starts
    <!-- docs: not run here: REASON -->    not run, and why (a real tenant, root, Docker, ...)

`run` and `serve` may add `, the block above as NAME`: the fenced block before this one is
written to NAME in the folder first. The binary built from the repository is first on PATH, as
`clouddevice_exporter`. A block without a comment fails the test: every command the docs show is
either run here or says why not. Everything started is stopped, by its process group.

    python3 tests/docs.py            # from the repository's top, after `cargo build --release`
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["README.md", "dashboards/README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
SHELL = {"sh", "bash", "shell", "console"}
MARKER = re.compile(r"<!--\s*docs:\s*(run|serve|not run here:)\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
LIMIT = 600

failures = []


def blocks(path):
    """(line, language, text, marker line, previous block's text) of each fenced block."""
    text = open(os.path.join(ROOT, path)).read()
    previous = None
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        yield line, m.group(1), m.group(2), before, previous
        previous = m.group(2)


def environment():
    env = dict(os.environ)
    env["PATH"] = os.path.join(ROOT, "target", "release") + os.pathsep + env["PATH"]
    return env


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except Exception:
        return False


def run(where, kind, args, script, previous):
    folder = tempfile.mkdtemp(prefix="docs-")
    try:
        saved = re.search(r"the block above as (\S+)", args)
        if saved:
            with open(os.path.join(folder, saved.group(1)), "w") as f:
                f.write(previous or "")
        in_repo = "in the repository" in args
        cwd = ROOT if in_repo else folder
        if not in_repo:
            # What a command names relative to the repository's top (dashboards/mixin).
            os.symlink(os.path.join(ROOT, "dashboards"), os.path.join(folder, "dashboards"))
        shell = ["bash", "-euo", "pipefail", "-c", script]
        if kind == "run":
            done = subprocess.run(shell, cwd=cwd, env=environment(), timeout=LIMIT,
                                  capture_output=True, text=True)
            ok = done.returncode == 0
            print(f"docs: {'ok  ' if ok else 'FAIL'} {where} runs")
            if not ok:
                print(done.stdout[-2000:], done.stderr[-2000:])
                failures.append(where)
            return
        url = args.split()[0]
        if answers(url):
            print(f"docs: FAIL {where}: {url} answers before the block runs; free the port")
            failures.append(where)
            return
        log = open(os.path.join(folder, "log"), "w+")
        server = subprocess.Popen(shell, cwd=cwd, env=environment(), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            end = time.monotonic() + LIMIT
            while time.monotonic() < end and server.poll() is None and not answers(url):
                time.sleep(0.5)
            ok = answers(url)
            print(f"docs: {'ok  ' if ok else 'FAIL'} {where} serves {url}")
            if not ok:
                log.seek(0)
                print(log.read()[-3000:])
                failures.append(where)
        finally:
            # The block's whole process group: cargo, the exporter, a simulator it put in the
            # background. Started here, so stopped here.
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    for path in FILES:
        for line, language, script, before, previous in blocks(path):
            if language not in SHELL:
                continue
            where = f"{path}:{line}"
            marker = MARKER.search(before)
            if not marker:
                print(f"docs: FAIL {where}: a shell block without <!-- docs: run | serve URL | not run here: REASON -->")
                failures.append(where)
                continue
            kind, args = marker.group(1), marker.group(2)
            if kind == "not run here:":
                if not args:
                    print(f"docs: FAIL {where}: not run, and no reason given")
                    failures.append(where)
                else:
                    print(f"docs: skip {where}: {args}")
                continue
            run(where, kind, args, script, previous)
    if failures:
        print(f"docs: {len(failures)} block(s) failed: {', '.join(failures)}")
        sys.exit(1)
    print("docs: every shell block runs or says why not")


if __name__ == "__main__":
    main()
