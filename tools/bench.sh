#!/usr/bin/env bash
# Reference scenarios S1–S3 (see tools/bench/README.md and docs/performance.md) as whole
# processes: wall time, peak RSS and simulated requests per wall-clock second, one line each.
#
#   tools/bench.sh                 # build release, run S1 S2 S3
#   tools/bench.sh S1 S2           # a subset
#   tools/bench.sh --quick         # scaled down: S2 100k, S3 500k requests (CI smoke)
#   tools/bench.sh --no-build --bin path/to/blis S1   # measure a given binary
#   tools/bench.sh --baseline /work/baseline-blis      # also run this binary, print new/old ratios
#   BENCH_TASKSET="taskset -c 1" tools/bench.sh       # pin to one core
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
build=1
bin=""
baseline=""
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    --bin) bin="$2"; shift ;;
    --baseline) baseline="$2"; shift ;;
    S1|S2|S3) scenarios+=("$1") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[ ${#scenarios[@]} -eq 0 ] && scenarios=(S1 S2 S3)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "$bin" ]; then
  bin="$CARGO_TARGET_DIR/release/blis"
  if [ "$build" = 1 ]; then
    cargo build --release -p blis-cli --quiet
  fi
fi
[ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (GNU time)" >&2; exit 2; }

common=(--model meta-llama/llama-3.1-8b-instruct --hardware H100 --tp 1 --seed 42 --progress never)
s2_requests=1000000
s3_requests=10000000
if [ "$quick" = 1 ]; then
  s2_requests=100000
  s3_requests=500000
fi

once() { # binary name target requests flags... → prints a line, sets $last_wall
  local b="$1" name="$2" target="$3" requests="$4"
  shift 4
  local out stats
  out="$(mktemp)"
  stats="$(mktemp)"
  ${BENCH_TASKSET:-} /usr/bin/time -f "%e %M" -o "$stats" "$b" run "${common[@]}" "$@" > "$out"
  local wall rss_kb completed
  read -r wall rss_kb < "$stats"
  completed="$(grep -m1 '"completed_requests"' "$out" | tr -dc '0-9')"
  awk -v n="$name" -v w="$wall" -v r="$rss_kb" -v c="$completed" -v q="$requests" -v t="$target" 'BEGIN {
    printf "%-8s wall %7.2f s  peak RSS %7.1f MiB  %9d requests  %10.0f sim req/s  completed %d  (target %s)\n",
      n, w, r / 1024, q, (w > 0 ? q / w : 0), c, t }'
  last_wall="$wall"
  rm -f "$out" "$stats"
}

run() { # name target requests flags...
  local name="$1" target="$2" requests="$3"
  shift 3
  if [ -n "$baseline" ]; then
    once "$baseline" "$name-base" "$target" "$requests" "$@"
    local old="$last_wall"
    once "$bin" "$name" "$target" "$requests" "$@"
    awk -v n="$name" -v a="$old" -v b="$last_wall" 'BEGIN {
      printf "%-8s new/old wall ratio %.2f\n", n, (a > 0 ? b / a : 0) }'
  else
    once "$bin" "$name" "$target" "$requests" "$@"
  fi
}

for s in "${scenarios[@]}"; do
  case "$s" in
    S1) run S1 "<= 0.05 s" 16800 \
          --max-num-running-reqs 128 --max-num-scheduled-tokens 2048 --workload general ;;
    S2) run S2 "<= 5 s, <= 1 GiB" "$s2_requests" \
          --num-instances 16 --routing-policy weighted \
          --workload-spec tools/bench/s2-shared-prefix.yaml --num-requests "$s2_requests" ;;
    S3) run S3 "<= 60 s, <= 2 GiB" "$s3_requests" \
          --num-instances 64 --routing-policy round-robin \
          --workload-spec tools/bench/s3-round-robin.yaml --num-requests "$s3_requests" ;;
  esac
done
