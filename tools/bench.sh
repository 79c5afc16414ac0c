#!/usr/bin/env bash
# Reference scenarios S1–S4 (see tools/bench/README.md and docs/performance.md) as whole
# processes: wall time, user+sys CPU, peak RSS and simulated requests per wall-clock second.
#
#   tools/bench.sh                 # build release, run S1 S2 S3 (S4 only when named)
#   tools/bench.sh S1 S2           # a subset
#   tools/bench.sh --quick         # scaled down: S2 100k, S3 500k, S4 2M requests (CI smoke)
#   tools/bench.sh --no-build --bin path/to/blis S1   # measure a given binary
#   tools/bench.sh --baseline /work/baseline-blis      # also run this binary, print new/old ratios
#   tools/bench.sh --threads 1 S3                      # pass --threads N to every run
#   tools/bench.sh --threads-ratio S3                  # S3 under --threads 1 and 2: wall ratio, cmp
#   tools/bench.sh --curve round-robin                 # wall/memory from 1 to 1000 instances
#   BENCH_CURVE_SIZES="1 4 16" BENCH_CURVE_PER_INSTANCE=2000 tools/bench.sh --curve weighted
#   BENCH_TASKSET="taskset -c 1" tools/bench.sh       # pin to one core
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
build=1
bin=""
baseline=""
threads=""
ratio=0
curve=""
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    --bin) bin="$2"; shift ;;
    --baseline) baseline="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --threads-ratio) ratio=1 ;;
    --curve) curve="$2"; shift ;;
    S1|S2|S3|S4) scenarios+=("$1") ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
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
[ -n "$threads" ] && common+=(--threads "$threads")
s2_requests=1000000
s3_requests=10000000
s4_requests=100000000
if [ "$quick" = 1 ]; then
  s2_requests=100000
  s3_requests=500000
  s4_requests=2000000
fi

# The S3/S4 workload (the `general` request shape over shared prefixes) at `rate` req/s for
# `requests` requests, written to a temporary file whose name is printed.
general_at() { # rate requests → path
  local f
  f="$(mktemp --suffix .yaml)"
  sed -e "s/rate: 2250.0, duration: 4445/rate: $1, duration: $(awk -v r="$1" -v n="$2" 'BEGIN { printf "%d", n / r + 1 }')/" \
    -e "s/^num_requests: .*/num_requests: $2/" tools/bench/s3-round-robin.yaml > "$f"
  echo "$f"
}

once() { # binary name target requests flags... → prints a line, sets $last_wall
  local b="$1" name="$2" target="$3" requests="$4"
  shift 4
  local out stats
  out="$(mktemp)"
  stats="$(mktemp)"
  ${BENCH_TASKSET:-} /usr/bin/time -f "%e %M %U %S" -o "$stats" "$b" run "${common[@]}" "$@" > "$out"
  local wall rss_kb user sys completed
  read -r wall rss_kb user sys < "$stats"
  completed="$(grep -m1 '"completed_requests"' "$out" | tr -dc '0-9')"
  awk -v n="$name" -v w="$wall" -v r="$rss_kb" -v c="$completed" -v q="$requests" -v t="$target" \
    -v cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" 'BEGIN {
    printf "%-8s wall %7.2f s  user+sys %7.2f s  peak RSS %7.1f MiB  %9d requests  %10.0f sim req/s  %6.2f µs/req  completed %d  (target %s)\n",
      n, w, cpu, r / 1024, q, (w > 0 ? q / w : 0), (q > 0 ? w * 1e6 / q : 0), c, t }'
  last_wall="$wall"
  last_out="$out"
  [ "${keep_out:-0}" = 1 ] || rm -f "$out"
  rm -f "$stats"
}

run() { # name target requests flags...
  local name="$1" target="$2" requests="$3"
  shift 3
  if [ "$ratio" = 1 ]; then
    # The same run under one and two threads: wall ratio, and the documents must be identical.
    keep_out=1
    once "$bin" "$name-t1" "$target" "$requests" "$@" --threads 1
    local w1="$last_wall" o1="$last_out"
    once "$bin" "$name-t2" "$target" "$requests" "$@" --threads 2
    local w2="$last_wall" o2="$last_out"
    keep_out=0
    local same="identical output"
    cmp -s "$o1" "$o2" || same="OUTPUT DIFFERS"
    awk -v n="$name" -v a="$w1" -v b="$w2" -v s="$same" 'BEGIN {
      printf "%-8s threads 1 / threads 2 wall ratio %.2f (%s)\n", n, (b > 0 ? a / b : 0), s }'
    rm -f "$o1" "$o2"
    [ "$same" = "identical output" ] || exit 1
  elif [ -n "$baseline" ]; then
    once "$baseline" "$name-base" "$target" "$requests" "$@"
    local old="$last_wall"
    once "$bin" "$name" "$target" "$requests" "$@"
    awk -v n="$name" -v a="$old" -v b="$last_wall" 'BEGIN {
      printf "%-8s new/old wall ratio %.2f\n", n, (a > 0 ? b / a : 0) }'
  else
    once "$bin" "$name" "$target" "$requests" "$@"
  fi
}

if [ -n "$curve" ]; then
  # Cost per simulated request against fleet size: the S3 shape at ~35 req/s per instance
  # (≈ 90 % of one instance's capacity), a fixed number of requests per instance.
  per="${BENCH_CURVE_PER_INSTANCE:-20000}"
  for n in ${BENCH_CURVE_SIZES:-1 4 16 64 256 1000}; do
    total=$((per * n))
    spec="$(general_at "$((35 * n))" "$total")"
    run "n=$n" "curve $curve" "$total" \
      --num-instances "$n" --routing-policy "$curve" --workload-spec "$spec" --num-requests "$total"
    rm -f "$spec"
  done
  exit 0
fi

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
    S4)
      # 1 000 instances at ~90 % load (35 200 req/s), round-robin, then weighted routing.
      spec="$(general_at 35200 "$s4_requests")"
      run S4-rr "<= 600 s, <= 4 GiB" "$s4_requests" \
        --num-instances 1000 --routing-policy round-robin --workload-spec "$spec" --num-requests "$s4_requests"
      run S4-wt "<= 600 s, <= 4 GiB" "$s4_requests" \
        --num-instances 1000 --routing-policy weighted --workload-spec "$spec" --num-requests "$s4_requests"
      rm -f "$spec" ;;
  esac
done
