#!/usr/bin/env bash
# The pretraining throughput benchmark on a GPU machine (issue 5), in one short run:
#
#   benchmarks/gpu.sh OUT [STEPS] [SEEDS]      # defaults: 800 steps, 2 seeds
#
# 1. the card's name, and the GEMM peak and model FLOPs utilisation of one training step
#    (benchmarks/mfu.py: the CNN, and the transformer at three widths);
# 2. ours against LightlySSL, SimCLR on Fashion-MNIST at batch 256, complete runs of STEPS
#    optimiser steps for SEEDS seeds each (benchmarks/vs_lightly.py --steps): samples/s, their
#    ratio, linear accuracy at 1% labels, host and GPU peak memory. LightlySSL augments in one
#    DataLoader worker per CPU core, as its examples do on a GPU machine;
# 3. the distributed path on the GPU: `torchrun --nproc_per_node=1` through nccl.
#
# It runs from the repository root with the machine's own python3 (PyTorch with CUDA) and our
# package from src/. Wheels found in .whl/ (LightlySSL, which its machine lacks: `pip download
# --no-deps lightly==1.6.0 -d .whl`) are installed into a temporary folder first. Fashion-MNIST
# is read from $UNLABELED_FASHION_MNIST (default /usr/share/datasets/fashion-mnist, or .gpudata/
# when that holds the IDX files: copy them there for a machine without the Debian package). Keep
# .whl/ and .gpudata/ out of git (.git/info/exclude). Every log is written to OUT. Nothing in the
# project or its tests needs a GPU; this script is the one place that uses one. A step that
# fails is named at the end and makes the exit status non-zero; the next step still runs.
set -uo pipefail
out=${1:?usage: benchmarks/gpu.sh OUT [STEPS] [SEEDS]}
steps=${2:-800}
seeds=${3:-2}
mkdir -p "$out" || exit 1
rm -f "$out"/{gpu.txt,mfu.log,vs_lightly.log,torchrun.log}
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
failed=()
step() { # step NAME LOG COMMAND...: run it, its output also appended to LOG; remember NAME if it fails
    local name=$1 log=$2
    shift 2
    "$@" 2>&1 | tee -a "$log"
    ((PIPESTATUS[0] == 0)) || failed+=("$name")
}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 UNLABELED_QUIET=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl \
        || exit 1
    export PYTHONPATH=$PYTHONPATH:$work/site
fi
if [[ -z ${UNLABELED_FASHION_MNIST:-} && -f .gpudata/train-images-idx3-ubyte.gz ]]; then
    export UNLABELED_FASHION_MNIST=$PWD/.gpudata
fi

python3 benchmarks/_provenance.py | tee "$out/gpu.txt" "$out/torchrun.log"  # commit, CPU, GPU, versions
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$out/gpu.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$out/gpu.txt"
python3 -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__)" \
    | tee -a "$out/gpu.txt"
python3 -c "import lightly; print('lightly', lightly.__version__)" 2>&1 | tee -a "$out/gpu.txt"

echo "== model FLOPs utilisation"
step mfu "$out/mfu.log" python3 benchmarks/mfu.py --device cuda --transformer-sizes tiny,small,base --steps 20
echo "== the same at batch 4096, bf16"
step mfu-4096 "$out/mfu.log" python3 benchmarks/mfu.py --device cuda --transformer-sizes tiny,small,base \
    --steps 20 --batch 4096 --precisions bf16

echo "== ours against LightlySSL, $steps steps, $seeds seeds"
step vs_lightly "$out/vs_lightly.log" python3 benchmarks/vs_lightly.py --device cuda --steps "$steps" \
    --seeds "$seeds" --lightly-python python3 --lightly-workers "$(nproc)" --work "$work/vs_lightly"

echo "== torchrun, one process, nccl"
data=$work/vs_lightly/fashion-mnist
[[ -d $data ]] || python3 -m unlabeled import fashion-mnist "$data" >/dev/null
step torchrun "$out/torchrun.log" python3 -m torch.distributed.run --nproc_per_node=1 -m unlabeled pretrain \
    "$data" --out "$work/ddp" --epochs 1 --batch-size 256 --device cuda
step torchrun-result "$out/torchrun.log" python3 -c "
import sys, unlabeled as ul
last = ul.open_run(sys.argv[1]).metrics()[-1]
print(f\"torchrun: {last['step']} steps, {last['samples_per_s']:.0f} samples/s, loss {last['loss']:.4f}\")
" "$work/ddp"

if ((${#failed[@]})); then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
