#!/usr/bin/env bash
# Issue 27: settings for the language-model forgetting methods, chosen on development splits
# alone (dev05, dev05-2, ...: 10 authors each outside every reported split, disjoint; forget_lm.py's
# dev_split), never on forget01/05/10. Each line is one candidate: METHOD and forget() keywords
# as JSON (epochs, lr, options). Reuses forget_lm.py's work folder (the fine-tuned model and
# each split's retrain, made on first use).
#
#   benchmarks/forget_lm_dev.sh benchmarks/work/curate/lm/curated benchmarks/work/forget-lm-v2 [METHOD] [SPLITS] \
#       | tee benchmarks/results/forget-lm-dev05-grid-DATE.log
set -euo pipefail
base=${1:?a clm run}
work=${2:?the work folder of forget_lm.py}
here=$(dirname "$0")
grid=(
  'npo {"epochs": 10, "lr": 5e-5}'
  'npo {"epochs": 10, "lr": 5e-5, "options": {"retain_weight": 5}}'
  'npo {"epochs": 20, "lr": 5e-5, "options": {"retain_weight": 5}}'
  'npo {"epochs": 5, "options": {"retain_weight": 5}}'
  'simnpo {"epochs": 10, "options": {"retain_weight": 5}}'
  'simnpo {"epochs": 20, "options": {"retain_weight": 5}}'
  'graddiff {"epochs": 10, "options": {"retain_weight": 5}}'
  'rmu {"options": {"retain_weight": 5}}'
  'rmu {"epochs": 10, "lr": 3e-4}'
  'ssd {"options": {"alpha": 10}}'
  'ssd {"options": {"alpha": 15}}'
  'ssd {"options": {"alpha": 20}}'
  'ssd {"options": {"alpha": 10, "dampening": 0.5}}'
  'ssd {"options": {"alpha": 10, "dampening": 2}}'
  'ssd {"options": {"alpha": 12.5}}'
  'ssd {"options": {"alpha": 17.5}}'
  'ssd {"options": {"alpha": 25}}'
  'ssd {"options": {"alpha": 30}}'
  'ssd {"options": {"alpha": 12.5, "retained": 4000}}'
  'ssd {"options": {"alpha": 10, "retained": 4000}}'
  'ssd {"options": {"alpha": 15, "retained": 4000}}'
  'ssd {"options": {"alpha": 20, "retained": 4000}}'
  'ssd {"options": {"alpha": 10, "repair": 2}}'
  'ssd {"options": {"alpha": 10, "repair": 5}}'
  'ssd {"options": {"alpha": 12.5, "repair": 2}}'
  'ssd {"options": {"alpha": 12.5, "repair": 5}}'
  'ssd {"lr": 3e-4, "options": {"alpha": 10, "repair": 2}}'
  'ssd {"options": {"alpha": 12.5, "retain_whole": 1}}'
  'ssd {"options": {"alpha": 10, "retain_whole": 1}}'
  'ssd {"options": {"alpha": 15, "retain_whole": 1}}'
)
only=${3:-}  # a method's name: its candidates alone (or a bash regex the candidate's line starts with)
splits=${4:-dev05}  # comma-separated development splits
for line in "${grid[@]}"; do
  method=${line%% *} option=${line#* }
  [ -n "$only" ] && ! [[ "$line" =~ ^$only ]] && continue
  echo "=== $method $option"
  python "$here/forget_lm.py" --base "$base" --work "$work" --splits "$splits" --methods "$method" --option "$option" \
    | grep -E "^(provenance|method|$method |original|retrain |dev)"
done
