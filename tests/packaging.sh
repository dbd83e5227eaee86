#!/usr/bin/env bash
# Checks the packaging files with the tools made for them (run by .ci/run; docker itself cannot
# run on the build machines): hadolint on the Dockerfile, promtool on the compose Prometheus
# configurations, kubernetes-validate on the manifests (the Prometheus Operator CRDs have no
# schema there and are skipped), and that the PrometheusRule carries alerts.yml's groups.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "packaging: hadolint Dockerfile"
hadolint Dockerfile

echo "packaging: the Dockerfile pins its base images by digest and writes no version by hand"
grep -E '^FROM ' Dockerfile | grep -v '@sha256:[0-9a-f]\{64\}' && { echo "a FROM without a digest"; exit 1; }
grep -E '^ARG VERSION=' Dockerfile && { echo "the version must come from Cargo.toml, not a default"; exit 1; }
# Its dependency layer builds with stub sources: one for every benchmark Cargo.toml names.
for bench in $(sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p}' Cargo.toml); do
  grep -q "for bench in .*\b$bench\b" Dockerfile || { echo "the Dockerfile stubs no benches/$bench.rs"; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for variant in . tls; do
  dir="$work/$variant"
  mkdir -p "$dir/certs"
  cp "examples/compose/$variant/prometheus.yml" dashboards/prometheus/alerts.yml "$dir/"
  # The files the TLS variant names exist at run time (made by its certs container).
  touch "$dir/certs/ca.crt" "$dir/password"
  echo "packaging: promtool check config examples/compose/$variant/prometheus.yml"
  promtool check config "$dir/prometheus.yml"
done

echo "packaging: promtool check config examples/sharding/prometheus-shard.yml"
promtool check config examples/sharding/prometheus-shard.yml

echo "packaging: kubernetes-validate examples/kubernetes"
kubernetes-validate --strict examples/kubernetes/*.yaml

echo "packaging: the kustomization names every manifest; kube-prometheus-stack's release label is on its objects"
python3 - <<'PY'
import glob, os, yaml
folder = "examples/kubernetes"
kustomization = yaml.safe_load(open(f"{folder}/kustomization.yaml"))
manifests = {os.path.basename(p) for p in glob.glob(f"{folder}/*.yaml")} - {"kustomization.yaml"}
assert set(kustomization["resources"]) == manifests, (kustomization["resources"], manifests)
for name in manifests:
    doc = yaml.safe_load(open(f"{folder}/{name}"))
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        assert doc["metadata"]["labels"].get("release"), f"{name} has no release label"
PY

echo "packaging: the PrometheusRule carries dashboards/prometheus/alerts.yml"
python3 - <<'PY'
import yaml
rules = yaml.safe_load(open("dashboards/prometheus/alerts.yml"))
crd = yaml.safe_load(open("examples/kubernetes/prometheusrule.yaml"))
assert crd["spec"]["groups"] == rules["groups"], "examples/kubernetes/prometheusrule.yaml differs from alerts.yml"
PY
echo "packaging: all checks passed"
