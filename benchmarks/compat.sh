#!/usr/bin/env bash
# Runs made by an older commit still load, embed, bench, resume and forget with the current code,
# and a bench of the same saved run gives the same numbers (bit for bit: the seeds fix them).
#   benchmarks/compat.sh OLD_COMMIT [WORK]     (WORK defaults to a temporary folder)
# The old commit is checked out in a temporary worktree and run with this checkout's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"; work="${2:-$(mktemp -d)}"
PY="$PWD/.venv/bin/python"; NEW_SRC="$PWD/src"
tree="$(mktemp -d)/old"; git worktree add -q --detach "$tree" "$old"
repo="$PWD"; trap 'git -C "$repo" worktree remove --force "$tree"' EXIT
export UNLABELED_QUIET=1
echo "commit $(git rev-parse --short HEAD) against $(git -C "$tree" rev-parse --short HEAD); work $work"
"$PY" benchmarks/_provenance.py  # the current code's commit, the CPU and its flags, the versions
mkdir -p "$work" && cd "$work"
rm -rf digits A A2 B C C-forgot A-forgot bench-old.json

echo "== the old code makes the runs"
old_py() { PYTHONPATH="$tree/src" "$PY" "$@"; }
old_py -m unlabeled import digits digits >/dev/null
old_py -m unlabeled pretrain digits --out A --epochs 1 --batch-size 64
old_py -m unlabeled finetune A --task digits --out C --epochs 1
old_py -m unlabeled bench A --task digits --fractions 0.1,1 --seeds 2 --probes linear,knn >/dev/null
cp A/bench.json bench-old.json
(PYTHONPATH="$tree/src" exec "$PY" -m unlabeled pretrain digits --out B --epochs 4 --batch-size 64 --checkpoint-steps 5) &
pid=$!
step() { "$PY" -c "import torch; print(torch.load('B/state.pt', weights_only=True)['step'])" 2>/dev/null || echo 0; }
for _ in $(seq 1 240); do sleep 0.5; [ -f B/state.pt ] && [ "$(step)" -ge 20 ] && break; done
kill -TERM "$pid"; wait "$pid" || true
echo "B interrupted at step $(step)"

echo "== the current code uses them"
new_py() { PYTHONPATH="$NEW_SRC" "$PY" "$@"; }
cp -r A A2 && rm -f A2/bench-cache.jsonl A2/bench.json A2/report.html  # score every fit anew
new_py -m unlabeled embed A2 digits
new_py -m unlabeled bench A2 --task digits --fractions 0.1,1 --seeds 2 --probes linear,knn >/dev/null
new_py - <<'PY'
import json
key = lambda r: (r["task"], r["model"].replace("A2", "A"), r["probe"], r["setting"])
rows = lambda path: {key(r): (r["mean"], r["std"]) for r in json.load(open(path))["rows"]}
old, new = rows("bench-old.json"), rows("A2/bench.json")
print(f"bench of the old run: {len(old)} rows, identical to the old code's: {old == new}")
for k in sorted(old):
    if old[k] != new.get(k):
        print("  differs:", k, old[k], new.get(k))
PY
new_py -m unlabeled pretrain digits --out B --resume
new_py -c "import unlabeled as ul; r = ul.open_run('B'); print('B resumed: finished', r.finished, 'at step', r.step)"
new_py - <<'PY'
import unlabeled as ul
ids = [str(i) for i in ul.open_collection("digits").ids[:20]]
for src, method in (("C", "salun"), ("A", "retrain")):
    out = ul.forget(src, ids=ids, method=method, out=f"{src}-forgot")
    print(f"forget 20 samples from the old {ul.open_run(src).kind} {src} with {method}: finished {out.finished}")
PY
