#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, from the seeds in fuzz/seeds, and fails
# on the first crash; a crash's input is left in fuzz/artifacts/<target>/. Needs cargo-fuzz
# (`cargo install cargo-fuzz`). cargo-fuzz asks rustc for unstable flags: the nightly toolchain
# is used when installed, else the stable one with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
# No sanitizer: the targets are safe Rust, where debug assertions (overflow) find more, faster.
flags=(--sanitizer none --debug-assertions)
cargo "${toolchain[@]}" fuzz build "${flags[@]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo "${toolchain[@]}" fuzz list); do
  mkdir -p "$work/$target"
  echo "--- fuzz $target for ${seconds}s"
  # New inputs go to the scratch folder; the committed seeds are only read.
  status=0
  cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$target" "$work/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=65536 >"$work/$target.log" 2>&1 || status=$?
  grep -E '^Done|^INFO: seed corpus|panicked|SUMMARY|crash-' "$work/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$work/$target.log"
    echo "fuzz target $target crashed (exit $status); its input is in fuzz/artifacts/$target/"
    exit 1
  fi
done
