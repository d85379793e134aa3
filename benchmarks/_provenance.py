"""The line every benchmark prints first (issue 24): the commit it ran from, the machine (CPU
model and the flags that decide its speed, the GPU if there is one) and the library versions,
so that a log says what produced it.

    python benchmarks/_provenance.py [MODULE ...]    # the line alone (the shell scripts; more modules' versions)

The commit is marked "+uncommitted changes" when the checkout differs from it: a tracked file
changed, or an untracked one present outside benchmarks/results/ (where the logs are written).
An installed library's version is read from its metadata when the benchmark has not imported
it, so that the line imports nothing a timing would then include.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
LIBRARIES = {"torch": "torch", "numpy": "numpy", "scikit-learn": "sklearn", "unlabeled": "unlabeled"}


def _output(*cmd: str) -> str:
    """``cmd``'s standard output, or "" if it cannot run or fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def commit() -> str:
    head = _output("git", "rev-parse", "--short", "HEAD")
    if not head:
        return "unknown (git cannot read this checkout)"
    changed = [
        line
        for line in _output("git", "status", "--porcelain").splitlines()
        if not line[3:].strip('"').startswith("benchmarks/results/")
    ]
    return head + (" +uncommitted changes" if changed else "")


def cpu() -> str:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    present = [f for f in FLAGS if f in flags]
    return f"{name} ({os.cpu_count()} cores; {' '.join(present) or 'none of ' + ' '.join(FLAGS)})"


def gpu() -> str:
    names = _output("nvidia-smi", "--query-gpu=name", "--format=csv,noheader").splitlines()
    return ", ".join(names) if names else "none"


def version(dist: str, module: str) -> str:
    from importlib import metadata  # here, not at the top: select_speed.py measures its children's memory

    if module in sys.modules:
        return str(getattr(sys.modules[module], "__version__", "?"))
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    try:  # on the path without being installed (PYTHONPATH=src)
        return str(getattr(__import__(module), "__version__", "?"))
    except ImportError:
        return "absent"


def unlabeled_source() -> str:
    """The folder ``unlabeled`` is imported from, or "" when that is this checkout's ``src/``."""
    mod = sys.modules.get("unlabeled")
    origin = getattr(mod, "__file__", None) if mod else getattr(util.find_spec("unlabeled"), "origin", None)
    if origin is None:
        return ""
    src = Path(origin).resolve().parent.parent
    return "" if src == ROOT / "src" else str(src)


def provenance(*modules: str) -> str:
    """One line: commit, CPU and its flags, GPU, versions (python, torch, numpy, scikit-learn,
    unlabeled, and ``modules``)."""
    libraries = {**LIBRARIES, **{m: m for m in modules}}
    versions = [f"python {platform.python_version()}"] + [f"{d} {version(d, m)}" for d, m in libraries.items()]
    line = f"provenance: commit {commit()}; cpu {cpu()}; gpu {gpu()}; {', '.join(versions)}"
    elsewhere = unlabeled_source()
    return line + (f"; unlabeled imported from {elsewhere}" if elsewhere else "")


if __name__ == "__main__":
    print(provenance(*sys.argv[1:]), flush=True)
