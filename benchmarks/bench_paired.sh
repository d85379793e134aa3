#!/usr/bin/env bash
# The demo's bench (27 cells: raw pixels, the run, random-init × linear, knn, nb × 1%, 10%,
# 100% of the labels × 3 seeds, 2 worker processes) timed at two commits on the same run and
# collection, one after the other, ROUNDS times (issue 28). Made for an idle CPU.
#   benchmarks/bench_paired.sh BASE_REV [ROUNDS] [RUN] [TASK]
# e.g. after `make demo`: benchmarks/bench_paired.sh 5352cb7 2 | tee benchmarks/results/bench-paired-DATE.log
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1 rounds=${2:-1} run=${3:-demo/runs/simclr} task=${4:-demo/data/fashion-mnist}
echo "# $(date -Is) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
.venv/bin/python benchmarks/_provenance.py
echo "base $(git rev-parse --short "$base"), head $(git rev-parse --short HEAD); run $run, task $task"
wt=$(mktemp -d)
git worktree add -q --detach "$wt" "$base"
trap 'git worktree remove --force "$wt"' EXIT
for r in $(seq "$rounds"); do
  for arm in base head; do
    out=$(mktemp -d)
    src=$([ "$arm" = base ] && echo "$wt/src" || echo "$PWD/src")
    echo "== $arm, round $r"
    PYTHONPATH=$src /usr/bin/time -f "$arm round $r: %e s wall, peak RSS %M KiB" \
      .venv/bin/unlabeled bench "$run" --task "$task" --baselines raw,random-init --out "$out" 2>&1 | grep -v '^USDT'
    rm -rf "$out"
  done
done
