#!/usr/bin/env bash
# TS2Vec on long series (issue 28): ACSF1 (100 train series of 1,460 steps, bundled with aeon),
# with the default window (`max_length` 512) and with whole series (`--option max_length=100000`):
#   1. the worst step: crops as long as the window (min_crop = the window), 4 steps of 64
#      (--epochs 2), seconds a step;
#   2. what a user gets: a 1-minute budget (MINUTES="1 3": each of these), steps made and the
#      share of the budget used.
#   benchmarks/long_series.sh | tee benchmarks/results/long-series-DATE.log
#   ARMS=whole MINUTES=3 benchmarks/long_series.sh     # one arm, another budget
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -Is) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
.venv/bin/python benchmarks/_provenance.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/unlabeled import ucr:ACSF1 "$tmp/acsf1" > /dev/null
summary() {  # RUN ARM BUDGET_S
  .venv/bin/python - "$@" <<'PY'
import json, sys
run, arm, budget = sys.argv[1], sys.argv[2], float(sys.argv[3])
last = json.loads(open(f"{run}/metrics.jsonl").read().splitlines()[-1])
used = f" of a {budget:.0f} s budget ({last['elapsed_s'] / budget - 1:+.1%})" if budget else ""
print(f"{arm}: {last['step']} steps in {last['elapsed_s']} s{used}, {last['elapsed_s'] / last['step']:.2f} s a step")
PY
}
for arm in ${ARMS:-window whole}; do
  len=$([ "$arm" = whole ] && echo 1460 || echo 512)
  opt="max_length=$([ "$arm" = whole ] && echo 100000 || echo 512)"
  /usr/bin/time -f "$arm, worst step: %e s wall, peak RSS %M KiB" .venv/bin/unlabeled pretrain "$tmp/acsf1" \
    --method ts2vec --epochs 2 --option "$opt" --option "min_crop=$len" --out "$tmp/$arm-worst" 2>&1 | grep -v '^USDT' | tail -1
  summary "$tmp/$arm-worst" "$arm, worst step" 0
  for m in ${MINUTES:-1}; do
    /usr/bin/time -f "$arm, $m-minute budget: %e s wall, peak RSS %M KiB" .venv/bin/unlabeled pretrain "$tmp/acsf1" \
      --method ts2vec --minutes "$m" --option "$opt" --out "$tmp/$arm-$m" 2>&1 | grep -v '^USDT' | tail -1
    summary "$tmp/$arm-$m" "$arm, $m-minute budget" $((m * 60))
  done
done
