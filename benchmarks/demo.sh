#!/usr/bin/env bash
# The numbers behind BENCHMARKS.md's demo section:
#   1. `make demo` from an empty demo/ folder, timed end to end (set-up included);
#   2. the peak resident memory of `unlabeled pretrain` on Fashion-MNIST, alone.
# Usage: benchmarks/demo.sh [DEMO_ARGS]   (about 20 minutes on a 2-core CPU), e.g. --precision fp32
# An AVX2-only CPU (no AVX-512, no bf16) stood in for by a newer one: PyTorch's and oneDNN's
# kernels held to AVX2, which the log records:
#   ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 benchmarks/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
log=benchmarks/results/demo-$(date +%Y%m%d-%H%M).log
rm -rf demo
{
  echo "# $(date -Is) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
  # commit, CPU flags, versions (before `make demo` has made .venv, the system python3 reports what it can)
  "$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )" benchmarks/_provenance.py
  echo "kernels: ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-unset} ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-unset}"
  /usr/bin/time -f "make demo: %e s wall, peak RSS %M KiB (its largest process)" make demo DEMO_ARGS="$*"
  echo
  tmp=$(mktemp -d)
  /usr/bin/time -f "unlabeled pretrain (3 min budget): %e s wall, peak RSS %M KiB" \
    .venv/bin/unlabeled pretrain demo/data/fashion-mnist --out "$tmp/run" --minutes 3
  rm -rf "$tmp"
} 2>&1 | tee "$log"
echo "log: $log"
