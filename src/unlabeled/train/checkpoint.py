"""Atomic checkpoints: a file is written beside its destination, flushed to disk, then
renamed over it, so a crash at any moment leaves either the old file or the new one. A
checkpoint's two files are written side by side first and renamed only once both are on disk
(:func:`atomic_write_all`), so a disk that fills up mid-checkpoint leaves the previous pair as
it was; the failure comes back as an ``OSError`` naming the file (``No space left on
device``), whichever library was writing.

``state.pt`` holds everything needed to resume (weights, optimiser, step, schedule) and is
read with ``torch.load(weights_only=True)``; ``model.safetensors`` holds the weights alone
for everything else that loads a run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from unlabeled._console import UnlabeledError, short_reason

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def _permissions(tmp: str) -> None:
    """The usual permissions (mkstemp makes 0600 files, and some writers recreate the file)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """An OSError inside names ``path``, the file the user asked for."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno or errno.EIO, e.strerror or str(e), str(path)) from None


def atomic_write_all(files: list[tuple[str | os.PathLike[str], Callable[[str], None]]]) -> None:
    """Write several files as one: each ``write(tmp_path)`` goes to a temporary file beside its
    destination and is fsynced; only when every one is written are they renamed into place. A
    failure (a full disk, say) removes the temporary files and leaves every destination as it
    was."""
    done: list[tuple[str, Path]] = []
    try:
        for path, write in files:
            path = Path(path)
            with _named(path):  # name the file being written, not its temporary twin
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                os.close(fd)
                done.append((tmp, path))
                write(tmp)
                _permissions(tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        for tmp, path in done:
            with _named(path):
                os.replace(tmp, path)
    except BaseException:
        for tmp, _ in done:
            Path(tmp).unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(path.parent for _, path in done):
        _fsync_dir(folder)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync the result, and rename it to ``path``."""
    atomic_write_all([(path, write)])


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


# safetensors keeps its metadata in a hash map whose order changes from one write to the next,
# so two saves of the same weights gave different bytes (and file digests, which lineage
# compares): the metadata goes in as one key, a JSON object with sorted keys.
_META_KEY = "unlabeled"


def _write_weights(tmp: str, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    try:
        save_file(tensors, tmp, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    except SafetensorError as e:  # an I/O error (a full disk) comes back as text: make it an OSError
        found = re.search(r"os error (\d+)", str(e))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code)) from None


class _Writes:
    """A file object for ``torch.save`` that keeps the OSError of a failed write: torch reports
    a full disk as an opaque RuntimeError."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _write_state(tmp: str, state: dict[str, Any]) -> None:
    with open(tmp, "wb") as f:
        out = _Writes(f)
        try:
            torch.save(state, out)
        except RuntimeError:
            if out.error is None:
                raise
            e = out.error
            raise OSError(e.errno or errno.EIO, e.strerror or str(e)) from None


def save_weights(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: _write_weights(tmp, tensors, meta))


def save_checkpoint(
    folder: str | os.PathLike[str], state: dict[str, Any], state_dict: dict[str, torch.Tensor], meta: dict[str, str]
) -> None:
    """``state.pt`` (the resume state) and ``model.safetensors`` (the weights) in ``folder``,
    as a pair: both are written before either replaces the previous checkpoint's file, and the
    state is renamed last. A crash between the two renames then leaves weights ahead of a state
    that says so (a resume trains those steps again and writes both), never a state that says
    the run finished beside the weights of an earlier step."""
    folder = Path(folder)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write_all(
        [
            (folder / MODEL_FILE, lambda tmp: _write_weights(tmp, tensors, meta)),
            (folder / STATE_FILE, lambda tmp: _write_state(tmp, state)),
        ]
    )


def _damaged(path: str | os.PathLike[str], reason: str) -> UnlabeledError:
    return UnlabeledError(f"{path} is damaged ({reason}); restore it or train the run again")


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a damaged one is an UnlabeledError naming it."""
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError) as e:
        raise _damaged(path, short_reason(e)) from None


def weights_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a ``.safetensors`` file (its step), without reading the tensors."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        packed = meta.pop(_META_KEY, None)  # older runs kept their metadata flat
        return meta if packed is None else {**meta, **{k: str(v) for k, v in json.loads(packed).items()}}
    except (SafetensorError, ValueError) as e:
        raise _damaged(path, short_reason(e)) from None


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: _write_state(tmp, state))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The resume state of ``state.pt`` (``weights_only``: nothing in it can run code); a damaged
    one is an UnlabeledError naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UnlabeledError(f"{path} is missing: the run has no resume state") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, KeyError, TypeError, IndexError):
        # torch's own messages here are paragraphs about weights_only and miniz
        raise _damaged(
            path, "not a readable PyTorch checkpoint: truncated, corrupted or another kind of file"
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise UnlabeledError(f"{path} is not a resume state (it records no step)")
    return state


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
