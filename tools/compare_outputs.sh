#!/usr/bin/env bash
# Exactness harness: runs a fixed list of scenarios through two `blis` binaries and compares
# their stdout (without the recorded `config`) and --results-path files byte for byte. Every
# performance change must pass it. Needs python3.
#
#   tools/compare_outputs.sh OLD_BIN NEW_BIN         # all scenarios
#   tools/compare_outputs.sh OLD_BIN NEW_BIN 3 7     # only these scenario numbers
set -uo pipefail
cd "$(dirname "$0")/.."
old="$1" new="$2"
shift 2
only=("$@")
m=(--model meta-llama/llama-3.1-8b-instruct --hardware H100 --tp 1 --seed 42 --progress never)
d=tools/compare
scenarios=(
  "single-low       --rate 5 --num-requests 400"
  "single-overload  --rate 80 --num-requests 1500"
  "tiny-kv-fcfs     --rate 30 --num-requests 600 --total-kv-blocks 300 --preemption-policy fcfs"
  "tiny-kv-prio     --rate 30 --num-requests 600 --total-kv-blocks 300 --preemption-policy priority --workload-spec $d/two-class.yaml --priority-policy slo-based"
  "lpt-64           --rate 40 --num-requests 800 --long-prefill-token-threshold 64"
  "max-model-len    --rate 30 --num-requests 800 --max-model-len 600 --prompt-tokens 400 --prompt-tokens-stdev 150 --output-tokens 300 --output-tokens-stdev 150"
  "summarization    --workload summarization --num-requests 500"
  "multidoc         --workload multidoc --num-requests 300 --max-num-scheduled-tokens 1024"
  "prio-fcfs        --workload-spec $d/two-class.yaml --scheduler priority-fcfs --priority-policy slo-based"
  "sjf              --workload-spec $d/two-class.yaml --scheduler sjf"
  "timeouts         --rate 120 --num-requests 2000 --timeout 1"
  "horizon          --rate 60 --num-requests 3000 --horizon 7000000"
  "multi-turn       --workload-spec $d/multi-turn.yaml"
  "rr-4             --num-instances 4 --routing-policy round-robin --rate 150 --num-requests 3000"
  "ll-4             --num-instances 4 --routing-policy least-loaded --rate 190 --num-requests 3000 --total-kv-blocks 2000"
  "weighted-4       --num-instances 4 --routing-policy weighted --workload-spec $d/multi-turn.yaml --rate 120"
  "general-3000     --workload general --num-requests 3000"
  "s1-small-batch   --workload general --num-requests 4000 --max-num-running-reqs 128 --max-num-scheduled-tokens 512"
  "weighted-ip      --num-instances 4 --routing-policy weighted --workload general --num-requests 4000 --rate 170 --total-kv-blocks 800"
  "trace-mt         --workload-trace $d/multi-turn-trace.csv --trace-header $d/multi-turn-trace.yaml --num-instances 3 --routing-policy weighted --total-kv-blocks 600"
  "rr-8-tiny-kv     --num-instances 8 --routing-policy round-robin --rate 240 --num-requests 4000 --total-kv-blocks 300 --timeout 2 --admission-latency 700 --routing-latency 300"
  "rr-5-bucket      --num-instances 5 --routing-policy round-robin --workload general --num-requests 4000 --rate 160 --admission-policy token-bucket --token-bucket-capacity 20000 --token-bucket-refill-rate 60000 --horizon 20000000"
  "rr-3-closed-mt   --num-instances 3 --routing-policy round-robin --workload-spec $d/multi-turn.yaml --rate 90"
)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
for s in "${scenarios[@]}"; do
  n=$((n + 1))
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $n " ]]; then continue; fi
  read -r name flags <<< "$s"
  # shellcheck disable=SC2086
  "$old" run "${m[@]}" $flags --results-path "$tmp/a.json" > "$tmp/a.out" 2> "$tmp/a.err"; ra=$?
  # shellcheck disable=SC2086
  "$new" run "${m[@]}" $flags --results-path "$tmp/b.json" > "$tmp/b.out" 2> "$tmp/b.err"; rb=$?
  if [ $ra -ne $rb ]; then
    echo "FAIL $n $name: exit $ra vs $rb"; fail=1; continue
  fi
  if [ $ra -ne 0 ]; then
    echo "FAIL $n $name: both exit $ra: $(head -c 300 "$tmp/a.err")"; fail=1; continue
  fi
  # The resolved configuration (`config`) is recorded by newer binaries only; compare the rest.
  for f in a b; do
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("config",None); print(json.dumps(d,indent=2))' \
      "$tmp/$f.out" > "$tmp/$f.cmp" 2>/dev/null || cp "$tmp/$f.out" "$tmp/$f.cmp"
  done
  if cmp -s "$tmp/a.cmp" "$tmp/b.cmp" && cmp -s "$tmp/a.json" "$tmp/b.json"; then
    printf 'ok   %2d %-16s completed %s preemptions %s\n' "$n" "$name" \
      "$(grep -m1 '"completed_requests"' "$tmp/a.out" | tr -dc '0-9')" \
      "$(grep -m1 '"preemption_count"' "$tmp/a.out" | tr -dc '0-9')"
  else
    echo "FAIL $n $name: outputs differ"; diff <(head -c 20000 "$tmp/a.cmp") <(head -c 20000 "$tmp/b.cmp") | head -20
    fail=1
  fi
done
exit $fail
