"""Atomic checkpoints: a file is written beside its destination, flushed to disk, then
renamed over it, so a crash at any moment leaves either the old file or the new one.

``state.pt`` holds everything needed to resume (weights, optimiser, step, schedule) and is
read with ``torch.load(weights_only=True)``; ``model.safetensors`` holds the weights alone
for everything else that loads a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync the result, and rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def save_weights(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) -> sha256 of the bytes


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, computed once per process for each version of the file (its
    path, inode, size and modification time: an atomic replace is a new inode); "" when the
    file does not exist."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return ""
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        with open(path, "rb") as f:
            _FILE_DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _FILE_DIGESTS[key]
