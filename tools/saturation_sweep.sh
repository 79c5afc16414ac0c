#!/usr/bin/env bash
# Finds the per-instance service rate μ (completed requests/s of one saturated instance) of a
# model/GPU/TP with the default workload, then prints TTFT p99 for {4, 8} instances at
# cluster rates 2μ (well below what 4 instances serve), 4μ (at their capacity) and 6μ (beyond it,
# the regime of the reference's "rate 500 with μ ≈ 57.4" experiment), with the 4→8 ratio.
#
#   BLIS=path/to/blis tools/saturation_sweep.sh            # default: target/release/blis
#   MODEL=… HARDWARE=… TP=… NUM_REQUESTS=… MU_REQUESTS=… ROUTING=… SEED=… tools/saturation_sweep.sh
#
# μ is measured by running one instance at doubling rates until throughput stops growing
# (< 2 % gain per doubling): the plateau is the rate a saturated instance completes requests.
set -euo pipefail

BLIS=${BLIS:-target/release/blis}
MODEL=${MODEL:-meta-llama/llama-3.1-8b-instruct}
HARDWARE=${HARDWARE:-H100}
TP=${TP:-1}
NUM_REQUESTS=${NUM_REQUESTS:-2000}
# More requests for μ: the drain at the end of a finite run (batch emptying) biases it low.
MU_REQUESTS=${MU_REQUESTS:-5000}
ROUTING=${ROUTING:-round-robin}
SEED=${SEED:-42}

if [[ ! -x $BLIS ]]; then
    echo "error: blis binary not found at '$BLIS' (build with: cargo build --release, or set BLIS=…)" >&2
    exit 2
fi
command -v jq >/dev/null || { echo "error: jq is required" >&2; exit 2; }

run() {
    "$BLIS" run --model "$MODEL" --hardware "$HARDWARE" --tp "$TP" --seed "$SEED" --progress never "$@" 2>/dev/null
}

echo "# $MODEL on $HARDWARE TP$TP, default workload, seed $SEED"
echo "# measuring μ: one instance, $MU_REQUESTS requests, no timeout"
printf '%10s %18s\n' "rate" "responses_per_sec"
rate=4
prev=0
mu=0
while :; do
    got=$(run --num-instances 1 --rate "$rate" --num-requests "$MU_REQUESTS" --timeout -1 | jq '.responses_per_sec')
    printf '%10s %18.3f\n' "$rate" "$got"
    if awk -v g="$got" -v p="$prev" 'BEGIN { exit !(p > 0 && g < p * 1.02) }'; then
        mu=$(awk -v g="$got" -v p="$prev" 'BEGIN { print (g > p ? g : p) }')
        break
    fi
    prev=$got
    rate=$((rate * 2))
    if ((rate > 8192)); then
        mu=$got
        break
    fi
done
rate_at() { awk -v m="$mu" -v k="$1" 'BEGIN { printf "%d", k * m + 0.5 }'; }
printf '# μ ≈ %.2f req/s per instance; 4μ ≈ %d req/s\n\n' "$mu" "$(rate_at 4)"

echo "# TTFT p99 (ms), routing $ROUTING, $NUM_REQUESTS requests"
printf '%10s %14s %14s %10s\n' "rate" "4 instances" "8 instances" "4→8 ratio"
for rate in "$(rate_at 2)" "$(rate_at 4)" "$(rate_at 6)"; do
    p4=$(run --num-instances 4 --rate "$rate" --num-requests "$NUM_REQUESTS" --routing-policy "$ROUTING" | jq '.ttft_p99_ms')
    p8=$(run --num-instances 8 --rate "$rate" --num-requests "$NUM_REQUESTS" --routing-policy "$ROUTING" | jq '.ttft_p99_ms')
    ratio=$(awk -v a="$p4" -v b="$p8" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '%10s %14.2f %14.2f %10s\n' "$rate" "$p4" "$p8" "$ratio"
done
