#!/usr/bin/env bash
# Structured fuzz run of every parser of user input (workload spec YAML, trace CSV and header,
# calibration measurements JSON, calibrate's sim-results JSON and ITL CSV, coefficient YAML,
# config.json, hardware config JSON, run config files, policy files, sweep grids), of the whole
# workload generation path and of whole runs from extreme descriptions, N cases per target
# (default 100 000), release build.
# The default `cargo test` runs the same targets with a few dozen cases each.
#
#   tools/fuzz.sh            # 10^5 cases per target
#   tools/fuzz.sh 1000000    # 10^6
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-100000}"
export BLIS_FUZZ_CASES="$cases" RUST_BACKTRACE=0
cargo build --release --tests -p blis-workload -p blis-model -p blis-latency -p blis-calibrate -p blis-config --quiet
start=$(date +%s)
cargo test --release -p blis-workload -p blis-model -p blis-latency -p blis-calibrate -p blis-config --lib --quiet fuzz
echo "fuzz: $cases cases per target, $(( $(date +%s) - start )) s"
