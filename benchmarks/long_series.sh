#!/usr/bin/env bash
# TS2Vec on long series (issue 28): ACSF1 (100 train series of 1,460 steps, bundled with aeon)
# pretrained for a 1-minute budget with the default window (`max_length` 512) and with whole
# series (`--option max_length=100000`): steps made, the step's samples/s, the budget used.
#   benchmarks/long_series.sh | tee benchmarks/results/long-series-DATE.log
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -Is) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
.venv/bin/python benchmarks/_provenance.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/unlabeled import ucr:ACSF1 "$tmp/acsf1" > /dev/null
for arm in window whole; do
  opt=$([ "$arm" = whole ] && echo "--option max_length=100000" || true)
  # shellcheck disable=SC2086  # $opt is two words or none
  /usr/bin/time -f "$arm: %e s wall, peak RSS %M KiB" \
    .venv/bin/unlabeled pretrain "$tmp/acsf1" --method ts2vec --minutes 1 --out "$tmp/$arm" $opt 2>&1 | grep -v '^USDT' | tail -2
  .venv/bin/python - "$tmp/$arm" "$arm" <<'PY'
import json, sys
last = json.loads(open(f"{sys.argv[1]}/metrics.jsonl").read().splitlines()[-1])
print(f"{sys.argv[2]}: {last['step']} steps in {last['elapsed_s']} s of a 60 s budget ({last['elapsed_s'] / 60 - 1:+.1%}), {last['samples_per_s']} samples/s at the end")
PY
done
