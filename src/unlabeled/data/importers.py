"""Importers: turn a built-in dataset, a folder of files or an array file into a Collection.

Every file is validated; a bad one (corrupt, unreadable, wrong size) is reported by path and
reason in the :class:`ImportReport` and skipped, and the others still import. A missing or
empty source is an error.

Folder layout: files directly under class folders get that class as label
(``root/cat/1.png``); a first level named ``train``/``test``/``val`` becomes the split
(``root/train/cat/1.png``); files anywhere else are imported unlabelled.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unlabeled._console import UnlabeledError, progress
from unlabeled.data.builtins import BUILTINS, Loaded
from unlabeled.data.collection import NO_LABEL, Collection, CollectionWriter

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
ARRAY_EXTENSIONS = {".npy"}
SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
CHUNK = 1024


@dataclass
class ImportReport:
    """What an import did: the collection written, what was inferred, every file skipped."""

    collection: Collection
    source: str
    modality: str
    imported: int
    bad: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        col = self.collection
        shape = "x".join(map(str, col.sample_shape))
        lines = [
            f"imported {self.imported} samples from {self.source} into {col.path}",
            f"  modality: {self.modality} (sample shape {shape}, {col.meta['dtype']})",
        ]
        if col.classes:
            lines.append(f"  labels: {len(col.classes)} classes")
        if col.splits is not None:
            counts = Counter(s for s in col.splits if s is not None)
            lines.append("  splits: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        lines += [f"  note: {n}" for n in self.notes]
        if self.bad:
            lines.append(f"  skipped {len(self.bad)} bad file(s):")
            lines += [f"    {path}: {reason}" for path, reason in self.bad]
        return "\n".join(lines)


def import_source(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    modality: str | None = None,
    labels: str | os.PathLike[str] | None = None,
    resize: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import ``source`` (a built-in name, a folder, or a ``.npy`` file) as a collection at
    ``dest``. ``labels`` is an optional per-row labels file for an array source; ``resize``
    (height, width) makes images of other sizes fit instead of being reported."""
    if modality not in (None, "image"):
        raise UnlabeledError(f"unknown modality {modality!r}; this version imports: image")
    name = str(source)
    if name in BUILTINS:
        return _write_loaded(BUILTINS[name].load(), dest, overwrite, name)
    path = Path(source)
    if not path.exists():
        raise UnlabeledError(
            f"source not found: {path} (neither a path nor a built-in dataset; "
            f"built-ins: {', '.join(BUILTINS)})"
        )
    if path.is_file():
        if path.suffix.lower() in ARRAY_EXTENSIONS:
            return _import_array_file(path, dest, labels, overwrite)
        raise UnlabeledError(f"cannot import {path}: expected a folder or a .npy file")
    return _import_folder(path, dest, resize, overwrite)


# -- in-memory sources -----------------------------------------------------------------------
def _write_loaded(
    loaded: Loaded, dest: str | os.PathLike[str], overwrite: bool, name: str
) -> ImportReport:
    writer = CollectionWriter(
        Path(dest),
        modality=loaded.modality,
        sample_shape=tuple(loaded.arrays.shape[1:]),
        dtype=str(loaded.arrays.dtype),
        classes=loaded.classes,
        extra_meta={"name": name, "source": loaded.source},
        overwrite=overwrite,
    )
    try:
        for s in range(0, len(loaded.arrays), 65536):
            sl = slice(s, s + 65536)
            writer.add(
                loaded.arrays[sl],
                loaded.ids[sl],
                None if loaded.labels is None else loaded.labels[sl],
                None if loaded.splits is None else loaded.splits[sl],
            )
        col = writer.close()
    except BaseException:
        writer.abort()
        raise
    return ImportReport(col, name, loaded.modality, len(col))


def _as_images(arr: np.ndarray) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) with C in 1..4 -> (N,C,H,W); (N,C,H,W) as is."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4 and arr.shape[-1] <= 4 < arr.shape[1]:
        return np.moveaxis(arr, -1, 1)
    if arr.ndim == 4:
        return arr
    raise UnlabeledError(
        f"array of shape {arr.shape} is not a stack of images (expected N×H×W, N×H×W×C or N×C×H×W)"
    )


def _read_labels(path: Path, n: int) -> tuple[np.ndarray, list[str]]:
    if path.suffix == ".npy":
        raw = np.load(path, allow_pickle=False).ravel().tolist()
    else:
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(raw) != n:
        raise UnlabeledError(f"{path} has {len(raw)} labels for {n} samples")
    names = sorted({str(v) for v in raw}, key=lambda v: (len(v), v))
    code = {c: i for i, c in enumerate(names)}
    return np.asarray([code[str(v)] for v in raw], dtype=np.int64), names


def _import_array_file(
    path: Path, dest: str | os.PathLike[str], labels: str | os.PathLike[str] | None, overwrite: bool
) -> ImportReport:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # corrupt header, pickled objects, truncated file
        raise UnlabeledError(f"cannot read {path}: {e}") from e
    arr = _as_images(arr)
    y, classes = (None, None) if labels is None else _read_labels(Path(labels), len(arr))
    bad: list[tuple[str, str]] = []
    keep = np.ones(len(arr), dtype=bool)
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(np.asarray(arr).reshape(len(arr), -1)).all(axis=1)
        for i in np.flatnonzero(~finite):
            bad.append((f"{path}[{i}]", "contains NaN or infinity"))
        keep &= finite
    dtype = "uint8" if arr.dtype == np.uint8 else "float32"
    writer = CollectionWriter(
        Path(dest), "image", tuple(arr.shape[1:]), dtype, classes,
        extra_meta={"name": path.stem, "source": str(path)}, overwrite=overwrite,
    )  # fmt: skip
    try:
        rows = np.flatnonzero(keep)
        for s in range(0, len(rows), 65536):
            r = rows[s : s + 65536]
            writer.add(np.asarray(arr[r]), [f"{i:06d}" for i in r], None if y is None else y[r])
        if not len(writer):
            raise UnlabeledError(f"no valid samples in {path}")
        col = writer.close()
    except BaseException:
        writer.abort()
        raise
    return ImportReport(col, str(path), "image", len(col), bad)


# -- folders of files ----------------------------------------------------------------------
@dataclass
class _Entry:
    path: Path
    rel: str
    label: str | None
    split: str | None
    shape: tuple[int, ...] | None = None  # (C, H, W) from the header


def _layout(root: Path, files: list[Path]) -> list[_Entry]:
    rels = [f.relative_to(root).parts for f in files]
    use_split = bool(rels) and all(len(p) > 1 and p[0].lower() in SPLIT_NAMES for p in rels)
    entries = []
    for f, parts in zip(files, rels, strict=True):
        split = SPLIT_NAMES[parts[0].lower()] if use_split else None
        inner = parts[1:] if use_split else parts
        label = inner[0] if len(inner) >= 2 else None
        entries.append(_Entry(f, "/".join(parts), label, split))
    return entries


def _image_header(path: Path) -> tuple[int, ...]:
    from PIL import Image

    with Image.open(path) as im:
        channels = 1 if im.mode in ("1", "L", "I", "I;16", "F", "LA") else 3
        return (channels, im.height, im.width)


def _read_image(path: Path, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    from PIL import Image

    c, h, w = shape
    with Image.open(path) as im:
        im.load()  # decodes fully: truncated or corrupt data fails here
        if (im.height, im.width) != (h, w):
            if not resize:
                raise ValueError(
                    f"size {im.height}x{im.width} differs from the collection's {h}x{w} "
                    f"(pass --resize {h}x{w} to resize)"
                )
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        if im.mode in ("I", "I;16", "F"):
            a = np.asarray(im, dtype=np.float64)
            lo, hi = float(a.min()), float(a.max())
            a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
            im = Image.fromarray(np.rint(a).astype(np.uint8))
        a = np.asarray(im.convert("L" if c == 1 else "RGB"), dtype=np.uint8)
    return a[None] if c == 1 else np.moveaxis(a, -1, 0)


def _npy_header(path: Path) -> tuple[int, ...]:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return tuple(arr.shape if arr.ndim == 3 else (1, *arr.shape))


def _read_npy(path: Path, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    a = np.load(path, allow_pickle=False)
    a = a[None] if a.ndim == 2 else a
    if a.shape != shape:
        raise ValueError(f"shape {a.shape} differs from the collection's {shape}")
    if not np.isfinite(a).all():
        raise ValueError("contains NaN or infinity")
    return a


def _import_folder(
    root: Path, dest: str | os.PathLike[str], resize: tuple[int, int] | None, overwrite: bool
) -> ImportReport:
    files, ignored = [], Counter()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            ext = Path(fn).suffix.lower()
            if ext in IMAGE_EXTENSIONS | ARRAY_EXTENSIONS:
                files.append(Path(dirpath) / fn)
            else:
                ignored[ext or "(no extension)"] += 1
    kinds = {f.suffix.lower() in ARRAY_EXTENSIONS for f in files}
    if not files:
        raise UnlabeledError(
            f"no importable files under {root} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS | ARRAY_EXTENSIONS))})"
        )
    if len(kinds) > 1:
        raise UnlabeledError(f"{root} mixes image files and .npy files; import them separately")
    is_npy = kinds == {True}
    header: Callable[[Path], tuple[int, ...]] = _npy_header if is_npy else _image_header
    reader = _read_npy if is_npy else _read_image
    notes = [f"ignored {n} file(s) with extension {e}" for e, n in sorted(ignored.items())]

    entries = _layout(root, files)
    bad: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for e, shape in zip(entries, pool.map(_safe(header), [e.path for e in entries]), strict=True):
            if isinstance(shape, str):
                bad.append((str(e.path), shape))
            else:
                e.shape = shape
        good = [e for e in entries if e.shape is not None]
        if is_npy:
            odd = [e for e in good if len(e.shape) != 3]
            bad += [(str(e.path), f"shape {e.shape[1:]} is not an image") for e in odd]
            good = [e for e in good if len(e.shape) == 3]
        if not good:
            raise UnlabeledError(
                f"none of the {len(entries)} file(s) under {root} could be read:\n"
                + "\n".join(f"  {p}: {r}" for p, r in bad[:20])
            )
        channels = max(e.shape[0] for e in good)
        if resize is not None:
            size = tuple(resize)
        else:
            size, count = Counter(e.shape[1:] for e in good).most_common(1)[0]
            if count < len(good):
                notes.append(f"most files are {size[0]}x{size[1]}; others are reported below")
        shape = (channels, *size) if not is_npy else Counter(e.shape for e in good).most_common(1)[0][0]
        classes = sorted({e.label for e in good if e.label is not None}) or None
        code = {c: i for i, c in enumerate(classes or [])}
        writer = CollectionWriter(
            Path(dest), "image", shape, "float32" if is_npy else "uint8", classes,
            extra_meta={"name": root.name, "source": str(root)}, overwrite=overwrite,
        )  # fmt: skip
        try:
            with progress() as bar:
                task = bar.add_task(f"import {root.name}", total=len(good))
                read = _safe(lambda p: reader(p, shape, resize is not None))
                for chunk in _chunks(good, CHUNK):
                    arrays, kept = [], []
                    for e, a in zip(chunk, pool.map(read, [e.path for e in chunk]), strict=True):
                        if isinstance(a, str):
                            bad.append((str(e.path), a))
                        else:
                            arrays.append(a)
                            kept.append(e)
                    if kept:
                        writer.add(
                            np.stack(arrays),
                            [e.rel for e in kept],
                            [code[e.label] if e.label is not None else NO_LABEL for e in kept],
                            [e.split for e in kept],
                        )
                    bar.advance(task, len(chunk))
            if not len(writer):
                raise UnlabeledError(
                    f"none of the {len(entries)} file(s) under {root} could be imported:\n"
                    + "\n".join(f"  {p}: {r}" for p, r in bad[:20])
                )
            col = writer.close()
        except BaseException:
            writer.abort()
            raise
    bad.sort()
    return ImportReport(col, str(root), "image", len(col), bad, notes)


def _safe(fn: Callable[[Path], object]) -> Callable[[Path], object]:
    """Wrap a reader so a failure comes back as its reason (a str) instead of raising."""

    def run(path: Path) -> object:
        try:
            return fn(path)
        except Exception as e:
            reason = str(e) or type(e).__name__
            return reason if isinstance(e, ValueError) else f"{type(e).__name__}: {reason}"

    return run


def _chunks(items: list[_Entry], n: int) -> Iterator[list[_Entry]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
