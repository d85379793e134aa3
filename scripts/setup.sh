#!/usr/bin/env bash
# Set up everything `unlabeled` needs on a fresh Debian machine, idempotently:
# system datasets/tools from Debian (Fashion-MNIST, the text corpora WordNet, GCIDE and fortunes, espeak-ng; chromium in test mode, for the headless report
# check), a virtual environment in .venv, the CPU build of PyTorch 2.13.0 (only when no torch is installed), and the
# package itself.
#   scripts/setup.sh          runtime (what `make demo` needs)
#   scripts/setup.sh test     + test tools (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

apt_pkgs=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_pkgs+=(dataset-fashion-mnist)
[ -f /usr/share/wordnet/data.noun ] || apt_pkgs+=(wordnet-base)      # text: WordNet glosses (`import wordnet`)
[ -f /usr/share/dictd/gcide.index ] || apt_pkgs+=(dict-gcide)        # text: the GCIDE dictionary (`import gcide`)
for lang in "" -bg -br -cs -de -eo -es -ga -it -pl -ru -zh; do    # text: fortunes in 12 languages (`import fortunes`)
    dpkg -s "fortunes$lang" >/dev/null 2>&1 || apt_pkgs+=("fortunes$lang")
done
command -v espeak-ng >/dev/null || apt_pkgs+=(espeak-ng)  # spoken-keyword audio (scripts/make_keywords.py)
if [ "$extra" = "test" ]; then
    command -v chromium >/dev/null || apt_pkgs+=(chromium)  # headless check of the bench report (tests/bench/test_report.py)
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${apt_pkgs[*]}"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip="$VENV/bin/python -m pip --disable-pip-version-check -q"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "setup: installing torch==2.13.0 (CPU build)"
    $pip install "torch==2.13.0"
fi
if [ "$extra" = "test" ]; then
    $pip install -e ".[test]"
else
    $pip install -e .
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
