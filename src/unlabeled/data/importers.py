"""Importers: turn a built-in dataset, a UCR/UEA set (``ucr:NAME``), a folder of files, a
table of series or an array file into a Collection, for every modality.

The modality is inferred from the files (images: PNG/JPEG/TIFF; audio: wav/flac/ogg; volumes:
NIfTI; series: CSV/TSV/Parquet/.ts tables, or one table per recording in a folder; text:
.txt/.md files, or a .jsonl table, or any table given ``text_column``) unless
``modality`` says it; ``.npy`` stacks are images unless their shape or ``modality`` says
otherwise. Every file is validated; a bad one (corrupt, unreadable, wrong size) is reported by path and
reason in the :class:`ImportReport` and skipped, and the others still import. A missing or
empty source is an error.

Folder layout: files directly under class folders get that class as label
(``root/cat/1.png``); a first level named ``train``/``test``/``val`` becomes the split
(``root/train/cat/1.png``); files anywhere else are imported unlabelled.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info, progress
from unlabeled._settings import folder
from unlabeled.data import formats
from unlabeled.data.builtins import BUILTINS
from unlabeled.data.collection import META_FILE, NO_LABEL, Collection, CollectionWriter, open_collection
from unlabeled.data.formats import AUDIO_EXTENSIONS, SERIES_TABLE_EXTENSIONS, TIFF_EXTENSIONS, VOLUME_EXTENSIONS, suffix
from unlabeled.data.keywords import SPEAKER_PATTERN, make_keywords
from unlabeled.data.loaded import Loaded
from unlabeled.data.textfiles import (
    TEXT_EXTENSIONS,
    TEXT_TABLE_EXTENSIONS,
    cut_note,
    read_text_file,
    read_text_table,
    text_header,
)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
ARRAY_EXTENSIONS = {".npy"}
MODALITY_NAMES = ("image", "series", "audio", "volume", "text")
# what files of a folder each modality imports (.npy serves every one)
FOLDER_EXTENSIONS = {
    "image": IMAGE_EXTENSIONS | TIFF_EXTENSIONS,
    "audio": AUDIO_EXTENSIONS,
    "volume": VOLUME_EXTENSIONS,
    "series": {".csv", ".tsv", ".parquet"},
    "text": TEXT_EXTENSIONS,
}
MAX_AUDIO_SECONDS = 10.0
MAX_VOLUME_SIDE = 128
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
    given: bool = False  # whether the modality was given rather than inferred
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (id, earlier id), same content

    def __post_init__(self) -> None:  # by file, then by line as a number: line 4 before line 31
        # isdecimal, not isdigit: a superscript ² is a digit int() cannot read
        self.bad.sort(key=lambda item: [int(t) if t.isdecimal() else t for t in re.split(r"(\d+)", item[0])])

    def summary(self) -> str:
        col = self.collection
        shape = "x".join(map(str, col.sample_shape))
        what = (
            f"documents, UTF-8, {col._nbytes.mean():.0f} bytes on average"
            if col.is_text
            else f"sample shape {shape}, {col.meta['dtype']}"
        )
        lines = [
            f"imported {self.imported} sample{'s' if self.imported != 1 else ''} from {self.source} into {col.path}",
            f"  modality: {self.modality}{'' if self.given else ' (inferred)'} ({what})",
        ]
        if col.classes:
            lines.append(f"  labels: {len(col.classes)} class{'es' if len(col.classes) != 1 else ''}")
        if col.splits is not None:
            counts = Counter(s for s in col.splits if s is not None)
            lines.append("  splits: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        lines += [f"  note: {n}" for n in self.notes]
        dups = self.duplicates
        if dups:
            shown = ", ".join(f"{a} = {b}" for a, b in dups[:5]) + (" ..." if len(dups) > 5 else "")
            lines.append(f"  exact duplicates: {len(dups)} sample(s) with the same content as an earlier one ({shown})")
        if self.bad:
            rows = sum(1 for path, _ in self.bad if re.search(r" (line|row) \d+$", path))
            series = sum(1 for path, _ in self.bad if re.search(r" id=[^/]*$", path))  # of a long table
            kinds = ((len(self.bad) - rows - series, "file(s)"), (rows, "row(s)"), (series, "series"))
            what = [f"{n} bad {w}" for n, w in kinds if n]
            lines.append(f"  skipped {' and '.join(what)}:")
            lines += [f"    {path}: {reason}" for path, reason in self.bad]
        return "\n".join(lines)


def is_named_source(name: str) -> bool:
    """Whether ``name`` is a source ``import_source`` knows by name (a built-in, ``ucr:NAME``,
    ``espeak-keywords``) rather than a path."""
    return name in BUILTINS or name == KEYWORDS or name.lower().startswith("ucr:")


def _files_under(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, through symbolic links to folders as an import walks
    them (each folder once): ``rglob`` does not follow them, so a file changed under a linked
    folder left the fingerprint as it was, and curation continued from stale work."""
    out, walked = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = os.path.realpath(dirpath)
        if here in walked:
            dirnames[:] = []
            continue
        walked.add(here)
        out += [Path(dirpath) / f for f in filenames]
    return sorted(out)


def source_fingerprint(source: str | os.PathLike[str]) -> str:
    """What an import of ``source`` depends on: a collection's fingerprint, a file's or a
    folder's files' names, sizes and modification times, or a built-in source's name (its
    content is fixed by the installed package)."""
    path = Path(source)
    if (path / META_FILE).is_file():
        return open_collection(path).fingerprint()
    if not path.exists():
        return str(source)
    files = _files_under(path) if path.is_dir() else [path]
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _source_name(source: Any) -> str:
    """``source`` as text; None or "" (an unset variable) is refused in one line."""
    if not isinstance(source, str | os.PathLike) or not str(source).strip():
        raise UnlabeledError(f"the source to import is {source!r}: give a path or a built-in name")
    return str(source)


def import_source(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    modality: str | None = None,
    labels: str | os.PathLike[str] | None = None,
    resize: tuple[int, ...] | str | None = None,
    sample_rate: int | None = None,
    seconds: float | None = None,
    columns: Sequence[str] = (),
    group_pattern: str | None = None,
    text_column: str | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import ``source`` as a collection at ``dest``: a built-in name (``unlabeled
    datasets``), ``ucr:NAME`` (a UCR/UEA set bundled in aeon), a folder, a table of series
    (CSV/TSV/Parquet/.ts) or a ``.npy`` stack. ``modality`` overrides inference.

    ``labels``: a per-row labels file for a ``.npy`` source. ``resize``: (H, W) for images of
    other sizes (reported otherwise), (D, H, W) for volumes, or "HxW" (default: the most common
    shape, at most 128 a side). ``sample_rate`` / ``seconds``: audio is resampled to this rate
    (default 16 kHz) and cropped or padded to this duration (default: the longest file, at
    most 10 s). ``columns``: per-sample columns of a series table to keep (a regression
    target such as ``fev1``, a patient id) rather than read as values. ``group_pattern``: a
    regular expression whose first group, found in each file's path within a folder, is the
    sample's group (a speaker, a patient), for group-aware splits in ``bench``. ``text_column``:
    the column of a table (CSV/TSV/Parquet/JSON lines) that holds one document per row (a
    ``.jsonl`` file is text with column ``text`` unless told otherwise)."""
    if modality not in (None, *MODALITY_NAMES):
        raise UnlabeledError(f"unknown modality {modality!r}; choose from {', '.join(MODALITY_NAMES)}")
    name, dest = _source_name(source), folder(dest, "dest")
    resize = size_option(resize)
    _check_import_options(Path(name), labels, resize, sample_rate, seconds)
    _check_named_source_options(name, modality=modality, columns=columns, group=group_pattern, text=text_column)
    if name in BUILTINS:
        return _write_loaded(BUILTINS[name].load(), dest, overwrite, name)
    if name.lower().startswith("ucr:"):
        return _write_loaded(formats.load_ucr(name[4:]), dest, overwrite, name[4:])
    if name == KEYWORDS:
        return _import_keywords(Path(dest), overwrite)
    path = Path(source)
    if group_pattern is not None and not path.is_dir():
        raise UnlabeledError("--group-pattern applies to folders of files (tables have a group column)")
    if columns and not (path.is_file() and suffix(path) in SERIES_TABLE_EXTENSIONS):
        raise UnlabeledError("--column applies to tables of series (CSV/TSV/Parquet), one row per sample or time step")
    if not path.exists():
        raise UnlabeledError(
            f"source not found: {path} (neither a path nor a built-in dataset; "
            f"built-ins: {', '.join([*BUILTINS, KEYWORDS])}, ucr:NAME)"
        )
    if text_column is not None and not (path.is_file() and suffix(path) in TEXT_TABLE_EXTENSIONS):
        raise UnlabeledError(f"--text-column applies to tables ({', '.join(sorted(TEXT_TABLE_EXTENSIONS))})")
    if path.is_file():
        ext = suffix(path)
        if ext in TEXT_TABLE_EXTENSIONS and (text_column or modality == "text" or ext == ".jsonl"):
            if modality not in (None, "text"):  # it was imported as text all the same
                raise UnlabeledError(f"{path} is a table of documents: it imports as text, not {modality}")
            loaded, bad = read_text_table(path, text_column)
            return _write_loaded(loaded, dest, overwrite, path.stem, bad, given=modality is not None)
        if ext in ARRAY_EXTENSIONS:
            report = _import_array_file(path, dest, labels, modality, overwrite)
            report.given = modality is not None
            return report
        if ext in SERIES_TABLE_EXTENSIONS and modality in (None, "series"):
            loaded, bad = formats.read_series_table(path, keep=columns)
            return _write_loaded(loaded, dest, overwrite, path.stem, bad, given=modality is not None)
        raise UnlabeledError(
            f"cannot import {path}: expected a folder, a .npy stack, a table of series "
            f"({', '.join(sorted(SERIES_TABLE_EXTENSIONS))}) or of text (.jsonl, or --text-column)"
        )
    if Path(dest).resolve().is_relative_to(path.resolve()):
        raise UnlabeledError(f"{dest} is inside {source}: the collection would be read back as part of its source")
    run = (path / "config.json").is_file() and any((path / f).is_file() for f in ("model.safetensors", "state.pt"))
    if (path / META_FILE).is_file() or run:  # read as files, its index became a series, its shards bad files
        what = "a collection already: use it as it is" if (path / META_FILE).is_file() else "a run, not data"
        raise UnlabeledError(f"{path} is {what} (select or curate make a collection from a collection)")
    opts = {"resize": resize, "sample_rate": sample_rate, "seconds": seconds, "group_pattern": group_pattern}
    report = _import_folder(path, dest, modality, opts, overwrite)
    report.given = modality is not None
    return report


def _check_named_source_options(name: str, **given: Any) -> None:
    """A built-in dataset is read as it is: options for files given with it were ignored."""
    if not is_named_source(name):
        return
    flags = {"modality": "--modality", "columns": "--column", "group": "--group-pattern", "text": "--text-column"}
    used = [flags[k] for k, v in given.items() if v]
    if used:
        raise UnlabeledError(f"{', '.join(used)} applies to files and tables; {name} is read as it is")


def size_option(value: Any) -> tuple[int, ...] | None:
    """``--resize``'s value as a tuple of sides: ``"HxW"`` or ``"DxHxW"`` (the CLI's form), or a
    sequence of 2 or 3 positive whole numbers; anything else is an UnlabeledError."""
    if value is None:
        return None
    given = value
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.lower().split("x")]
        except ValueError:
            value = []
    sides = list(value) if isinstance(value, list | tuple) else []
    if len(sides) not in (2, 3) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sides):
        raise UnlabeledError(
            "--resize takes HEIGHTxWIDTH (images) or DEPTHxHEIGHTxWIDTH (volumes), e.g. 28x28 or (28, 28); "
            f"got {given!r}"  # as given: 'abc', not the [] it parsed to
        )
    return tuple(sides)


def _check_import_options(path: Path, labels: Any, resize: Any, sample_rate: Any, seconds: Any) -> None:
    """The options' values, and options that only some sources read refused elsewhere rather
    than silently ignored: a labels file for a ``.npy`` stack; resizing and resampling for
    folders of files (a stack has one shape, a built-in set its own)."""
    _check_audio_options(sample_rate, seconds)
    if resize is not None and (min(resize) < 1 or math.prod(resize) > MAX_RESIZE_VALUES):
        raise UnlabeledError(
            f"--resize {'x'.join(map(str, resize))}: each side at least 1 and at most {MAX_RESIZE_VALUES:,} values a "
            "sample (a volume of 256x256x256)"
        )
    folder_options = {"--resize": resize, "--sample-rate": sample_rate, "--seconds": seconds}
    stack = path.is_file() and suffix(path) in ARRAY_EXTENSIONS
    if labels is not None and not stack:
        raise UnlabeledError(
            "--labels applies to a .npy stack; a folder's labels are its class subfolders, a table's its label column"
        )
    given = [flag for flag, value in folder_options.items() if value is not None]
    if given and not path.is_dir():
        raise UnlabeledError(f"{', '.join(given)} applies to folders of files; {path} is read as it is")


KEYWORDS = "espeak-keywords"


def _import_keywords(dest: Path, overwrite: bool) -> ImportReport:
    """The default spoken-keyword set (``unlabeled.data.keywords``): synthesised beside
    ``dest`` (kept, so an interrupted import resumes), imported with each clip's speaker as
    its group, the WAV folder removed once the collection is written."""
    work = dest.parent / f".{dest.name}.clips"
    make_keywords(work / KEYWORDS)
    report = _import_folder(work / KEYWORDS, dest, "audio", {"group_pattern": SPEAKER_PATTERN}, overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return report


# -- in-memory sources -----------------------------------------------------------------------
MAX_RESIZE_VALUES = 256**3  # a sample's values after --resize: beyond it a collection outgrows memory
MAX_IMPORT_SECONDS = 3600.0  # an hour a recording: beyond it a stack of them would not fit in memory


def _check_audio_options(sample_rate: int | None, seconds: float | None) -> None:
    """--sample-rate and --seconds: a rate of 1 kHz to 384 kHz, a length over 0 up to an hour
    (their kinds first: "16000" compared with a number was a TypeError)."""
    whole = isinstance(sample_rate, int | np.integer) and not isinstance(sample_rate, bool)
    if sample_rate is not None and (not whole or not 1000 <= sample_rate <= 384_000):
        raise UnlabeledError(f"--sample-rate must be between 1000 and 384000 Hz, got {sample_rate!r}")
    number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if seconds is not None and not (number and 0 < seconds <= MAX_IMPORT_SECONDS):
        raise UnlabeledError(f"--seconds must be over 0 and at most {MAX_IMPORT_SECONDS:g}, got {seconds!r}")


def _write_loaded(
    loaded: Loaded,
    dest: str | os.PathLike[str],
    overwrite: bool,
    name: str,
    bad: list[tuple[str, str]] | None = None,
    given: bool = True,
) -> ImportReport:
    writer = CollectionWriter(
        Path(dest),
        modality=loaded.modality,
        sample_shape=tuple(loaded.arrays.shape[1:]),
        dtype=str(loaded.arrays.dtype),
        classes=loaded.classes,
        extra_meta={"name": name, "source": loaded.source, **loaded.meta},
        overwrite=overwrite,
    )
    notes = list(loaded.notes) + (formats.missing_inside(loaded.arrays) if loaded.modality == "series" else [])
    try:
        for s in range(0, len(loaded.arrays), 65536):
            sl = slice(s, s + 65536)
            writer.add(
                loaded.arrays[sl],
                loaded.ids[sl],
                None if loaded.labels is None else loaded.labels[sl],
                None if loaded.splits is None else loaded.splits[sl],
                None if loaded.groups is None else loaded.groups[sl],
                {k: v[sl] for k, v in loaded.columns.items()},
            )
        col = writer.close()
    except BaseException:
        writer.abort()
        raise
    notes += writer.outlier_notes()
    return ImportReport(col, name, loaded.modality, len(col), list(bad or []), notes, given, writer.duplicates)


def _as_images(arr: np.ndarray) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) with C in 1..4 -> (N,C,H,W); (N,C,H,W) as is."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4 and arr.shape[-1] <= 4 < arr.shape[1]:
        return np.moveaxis(arr, -1, 1)
    if arr.ndim == 4:
        return arr
    raise UnlabeledError(f"array of shape {arr.shape} is not a stack of images (expected N×H×W, N×H×W×C or N×C×H×W)")


def _read_labels(path: Path, n: int) -> tuple[np.ndarray, list[str]]:
    try:
        if path.suffix == ".npy":
            arr = formats.load_npy(path)
            arr = arr.ravel() if arr.ndim == 2 and 1 in arr.shape else arr  # a column or a row of labels
            if arr.ndim != 1:
                shape = "x".join(map(str, arr.shape))
                raise UnlabeledError(f"the labels file {path} holds a {shape} array: one label per sample")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise UnlabeledError(f"the labels file {path} holds {arr[bad]} at position {bad}: labels are classes")
            if arr.dtype.kind == "f" and (arr == np.round(arr)).all():
                arr = arr.astype(np.int64)  # 3.0 is class 3, as in a text file
            raw = arr.tolist()
        else:
            # utf-8-sig: a byte-order mark made the first label a class of its own
            raw = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
            while raw and not raw[-1]:  # blank lines at the end are no labels
                raw.pop()
            blank = [i + 1 for i, v in enumerate(raw) if not v]
            if blank:  # dropping it would shift every later label onto the wrong sample
                raise UnlabeledError(
                    f"the labels file {path} has a blank line at line {blank[0]}: one label per sample, in order"
                )
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise UnlabeledError(
            f"the labels file {path} is not UTF-8 text (byte {e.object[e.start]:#x} on line {line})"
        ) from None
    except (OSError, ValueError) as e:
        raise UnlabeledError(f"cannot read the labels file {path}: {getattr(e, 'strerror', None) or e}") from None
    if len(raw) != n:
        raise UnlabeledError(f"{path} has {len(raw)} labels for {n} samples")
    # -1 in an array of whole numbers marks an unlabelled sample (scikit-learn's convention for
    # semi-supervised labels): it was made a class "-1", and those samples trained as labelled
    none = path.suffix == ".npy" and arr.dtype.kind in "iu" and -1 in raw
    if none:
        info(f"note: {raw.count(-1)} label(s) of -1 in {path} read as unlabelled samples")
    names = sorted({str(v) for v in raw if not (none and v == -1)}, key=lambda v: (len(v), v))
    code = {c: i for i, c in enumerate(names)} | ({"-1": NO_LABEL} if none else {})
    return np.asarray([code[str(v)] for v in raw], dtype=np.int64), names


def _as_modality(arr: np.ndarray, modality: str | None) -> tuple[np.ndarray, str]:
    """A stack of samples in the layout of its modality (inferred from the shape if None)."""
    if modality is None:
        modality = {2: "series", 5: "volume"}.get(arr.ndim, "image")
    if modality == "image":
        return _as_images(arr), modality
    if modality == "series" and arr.ndim in (2, 3):
        return (arr[:, None] if arr.ndim == 2 else arr), modality
    if modality == "volume" and arr.ndim in (4, 5):
        return (arr[:, None] if arr.ndim == 4 else arr), modality
    expected = {
        "series": "N×T or N×C×T",
        "volume": "N×D×H×W or N×C×D×H×W",
        "audio": "audio imports from files",
        "text": "text imports from .txt/.md files or a table's text column",
    }
    what = expected.get(modality, f"choose from {', '.join(expected)} or image")
    raise UnlabeledError(f"array of shape {arr.shape} is not a stack of {modality} samples ({what})")


def _import_array_file(
    path: Path,
    dest: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None,
    modality: str | None,
    overwrite: bool,
) -> ImportReport:
    try:
        arr = formats.load_npy(path, "r")
    except Exception as e:  # corrupt header, pickled objects, truncated file
        raise UnlabeledError(f"cannot read {path}: {e}") from e
    if arr.ndim and not arr.shape[0]:
        raise UnlabeledError(f"{path} holds no samples (an array of shape {arr.shape})")
    if 0 in arr.shape:  # written, the collection could not be opened (and --overwrite had replaced one)
        raise UnlabeledError(f"{path}: its samples are empty (an array of shape {arr.shape})")
    try:
        formats.check_numeric(arr)
        arr, modality = _as_modality(arr, modality)
    except (UnlabeledError, ValueError) as e:
        raise UnlabeledError(f"{path}: {e}") from None
    y, classes = (None, None) if labels is None else _read_labels(Path(labels), len(arr))
    notes = [] if classes is None else formats.fractional_labels(f"the labels in {labels}", classes)
    bad: list[tuple[str, str]] = []
    keep = np.ones(len(arr), dtype=bool)
    if np.issubdtype(arr.dtype, np.floating):
        flat = np.asarray(arr).reshape(len(arr), -1)
        # series may end in NaN padding; nothing may hold infinity
        ok = ~np.isinf(flat).any(axis=1) if modality == "series" else np.isfinite(flat).all(axis=1)
        if modality == "series":
            ok &= ~np.isnan(flat).all(axis=1)
        for i in np.flatnonzero(~ok):
            bad.append(
                (
                    f"{path}[{i}]",
                    "contains infinity or no values" if modality == "series" else "contains NaN or infinity",
                )
            )
        if np.finfo(arr.dtype).max > formats.FLOAT32_MAX:  # what the float32 cast would make infinite
            big = ok & (np.isfinite(flat) & (np.abs(flat) > formats.FLOAT32_MAX)).any(axis=1)
            for i in np.flatnonzero(big):
                bad.append((f"{path}[{i}]", f"a value beyond float32's range ({formats.beyond_float32(flat[i]):g})"))
            ok &= ~big
        keep &= ok
        if modality == "series":
            notes += formats.missing_inside(np.asarray(arr).reshape(len(arr), -1, arr.shape[-1])[keep])
    dtype = "uint8" if arr.dtype == np.uint8 and modality == "image" else "float32"
    writer = CollectionWriter(
        Path(dest),
        modality,
        tuple(arr.shape[1:]),
        dtype,
        classes,
        extra_meta={"name": path.stem, "source": str(path)},
        overwrite=overwrite,
    )
    try:
        rows = np.flatnonzero(keep)
        for s in range(0, len(rows), 65536):
            r = rows[s : s + 65536]
            writer.add(np.asarray(arr[r]), [f"{i:06d}" for i in r], None if y is None else y[r])
        if not len(writer):
            kinds = sorted({reason.split(" (")[0] for _, reason in bad})  # each reason once, without its value
            why = f": every one of its {len(arr)} samples is bad ({'; '.join(kinds)})" if len(bad) == len(arr) else ""
            raise UnlabeledError(f"no valid samples in {path}{why}")
        col = writer.close()
    except BaseException:
        writer.abort()
        raise
    notes += writer.outlier_notes()
    return ImportReport(col, str(path), modality, len(col), bad, notes, duplicates=writer.duplicates)


# -- folders of files ----------------------------------------------------------------------
def _compile_group_pattern(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UnlabeledError(f"--group-pattern {pattern!r} is not a regular expression: {e}") from None


def _group_of(pattern: re.Pattern[str], rel: str) -> str | None:
    """The group of a file: the pattern's first capture group (or whole match) in its path
    relative to the imported folder; None (its own group) when it does not match."""
    m = pattern.search(rel)
    if m is None:
        return None
    return m.group(1) if m.groups() else m.group(0)


@dataclass
class _Entry:
    path: Path
    rel: str
    label: str | None
    split: str | None
    shape: tuple[int, ...] | None = None  # (C, H, W) from the header


def text_name(name: str) -> str:
    """A file or folder name as text: the bytes of a name that is not valid UTF-8 (a folder
    unpacked from a Latin-1 archive; Python reads them as lone surrogates, which no UTF-8 file
    can hold) written as ``\\xNN`` escapes, so ``caf\\xe9.png`` imports under that id."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _layout(
    root: Path, files: list[Path], notes: list[str] | None = None, bad: list[tuple[str, str]] | None = None
) -> list[_Entry]:
    """Each file's id, label (its folder) and split. The folder is split by its first level
    where every file is under a split folder (``train/``, ``test/``) or where two kinds of
    split folder are there: then a file outside them goes to ``bad`` (one stray ``cover.png``
    turned ``train`` and ``test`` into two classes, the test images trained on)."""
    rels = [tuple(map(text_name, f.relative_to(root).parts)) for f in files]
    escaped = sum(rel != f.relative_to(root).parts for f, rel in zip(files, rels, strict=True))
    if escaped and notes is not None:
        notes.append(f"{escaped} file path(s) not valid UTF-8: their ids and labels write the bad bytes as \\xNN")
    in_split = [len(p) > 1 and p[0].lower() in SPLIT_NAMES for p in rels]
    kinds = {SPLIT_NAMES[p[0].lower()] for p, yes in zip(rels, in_split, strict=True) if yes}
    use_split = bool(rels) and (all(in_split) or len(kinds) >= 2)
    entries = []
    for f, parts, yes in zip(files, rels, in_split, strict=True):
        if use_split and not yes:
            if bad is not None:
                names = ", ".join(f"{k}/" for k in sorted(kinds))
                bad.append((str(f), f"outside the split folders ({names}) the folder is split by: not imported"))
            continue
        split = SPLIT_NAMES[parts[0].lower()] if use_split else None
        inner = parts[1:] if use_split else parts
        label = inner[0] if len(inner) >= 2 else None
        entries.append(_Entry(f, "/".join(parts), label, split))
    return entries


EXIF_ORIENTATION = 0x0112  # values 5-8 turn the image a quarter: its height is the stored width


def _image_header(path: Path) -> tuple[int, ...]:
    from PIL import Image

    with Image.open(path) as im:
        channels = 1 if im.mode in ("1", "L", "I", "I;16", "F", "LA") else 3
        turned = im.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
        return (channels, im.width, im.height) if turned else (channels, im.height, im.width)


def _read_image(path: Path, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    from PIL import Image, ImageOps

    c, h, w = shape
    with Image.open(path) as stored:
        orientation = stored.getexif().get(EXIF_ORIENTATION, 1)
        size = (stored.width, stored.height) if orientation in (5, 6, 7, 8) else (stored.height, stored.width)
        if size != (h, w) and not resize:  # said before decoding anything
            raise ValueError(
                f"size {size[0]}x{size[1]} differs from the collection's {h}x{w} (pass --resize {h}x{w} to resize)"
            )
        stored.load()  # decodes fully: truncated or corrupt data fails here
        # as a viewer shows it: a phone's photo is stored sideways with an EXIF orientation
        im = ImageOps.exif_transpose(stored) if orientation != 1 else stored
        if (im.height, im.width) != (h, w):
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        if im.mode in ("I", "I;16", "F"):
            a = np.asarray(im, dtype=np.float64)
            lo, hi = float(a.min()), float(a.max())
            a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
            im = Image.fromarray(np.rint(a).astype(np.uint8))
        a = np.asarray(im.convert("L" if c == 1 else "RGB"), dtype=np.uint8)
    return a[None] if c == 1 else np.moveaxis(a, -1, 0)


def _npy_ndim(path: Path) -> int:
    return formats.load_npy(path, "r").ndim


def _npy_header(path: Path) -> tuple[int, ...]:
    arr = formats.load_npy(path, "r")
    formats.check_not_empty(arr.shape)
    return tuple(arr.shape if arr.ndim == 3 else (1, *arr.shape))


def _read_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    a = formats.check_numeric(formats.load_npy(path))
    a = a[None] if a.ndim == 2 else a
    if a.shape != shape:
        raise ValueError(f"shape {a.shape} differs from the collection's {shape}")
    return a if a.dtype == np.uint8 else formats.as_float32(a)


@dataclass
class _Kind:
    """How one modality's files are imported: ``header`` reads a file's shape cheaply,
    ``plan`` picks the collection's sample shape (and notes, metadata) from all the headers,
    ``read`` loads one file in that shape or raises with the reason."""

    modality: str
    dtype: str
    header: Callable[[Path], tuple[int, ...]]
    plan: Callable[[list[tuple[int, ...]], dict[str, Any], list[str]], tuple[tuple[int, ...], dict[str, Any]]]
    read: Callable[[Path, tuple[int, ...], dict[str, Any]], np.ndarray]


def _most_common(shapes: list[tuple[int, ...]], resize: str = "") -> tuple[tuple[int, ...], int]:
    """The commonest shape and its count. Where it is not most of the files (ten images of ten
    sizes), which one the collection takes would be a guess that drops the rest: with
    ``resize`` (the option that would make them one shape) that is an error naming it."""
    shape, count = Counter(shapes).most_common(1)[0]
    if resize and len(shapes) > 1 and 2 * count <= len(shapes):
        sides = "x".join(map(str, shape))
        raise UnlabeledError(
            f"the {len(shapes)} files come in {len(set(shapes))} shapes and none is most of them (the commonest, "
            f"{sides}, holds {count}); pass {resize} {sides} (or the shape you want) to resize them all"
        )
    return shape, count


def _plan_image(shapes: list[tuple[int, ...]], opts: dict[str, Any], notes: list[str]) -> tuple[tuple[int, ...], dict]:
    channels = max(s[0] for s in shapes)
    if opts.get("resize") is not None:
        if len(opts["resize"]) != 2:
            raise UnlabeledError(f"images resize to HxW, got {'x'.join(map(str, opts['resize']))}")
        return (channels, *opts["resize"]), {}
    size, count = _most_common([s[1:] for s in shapes], resize="--resize")
    if count < len(shapes):
        notes.append(f"most files are {size[0]}x{size[1]}; others are reported below")
    return (channels, *size), {}


def _plan_bands(shapes: list[tuple[int, ...]], opts: dict[str, Any], notes: list[str]) -> tuple[tuple[int, ...], dict]:
    bands, count = _most_common([s[:1] for s in shapes])
    if count < len(shapes):
        notes.append(f"most files have {bands[0]} bands; others are reported below")
    shape, meta = _plan_image(shapes, opts, notes)
    return (bands[0], *shape[1:]), meta


def _plan_npy(shapes: list[tuple[int, ...]], opts: dict[str, Any], notes: list[str]) -> tuple[tuple[int, ...], dict]:
    shape, count = _most_common(shapes)
    if count < len(shapes):
        notes.append(f"most arrays have shape {shape}; others are reported below")
    return shape, {}


def _plan_audio(shapes: list[tuple[int, ...]], opts: dict[str, Any], notes: list[str]) -> tuple[tuple[int, ...], dict]:
    rate = int(opts.get("sample_rate") or 16000)
    longest = max(frames / sr for sr, frames in shapes)
    seconds = opts.get("seconds") or min(longest, MAX_AUDIO_SECONDS)
    if not opts.get("seconds") and longest > MAX_AUDIO_SECONDS:
        notes.append(f"recordings are cropped to {MAX_AUDIO_SECONDS:g} s (pass --seconds to change)")
    rates = sorted({sr for sr, _ in shapes})
    notes.append(
        f"audio resampled to {rate} Hz mono (files at {', '.join(map(str, rates))} Hz), "
        f"cropped or zero-padded to {seconds:g} s"
    )
    return (1, max(1, round(seconds * rate))), {"sample_rate": rate}


def _plan_volume(shapes: list[tuple[int, ...]], opts: dict[str, Any], notes: list[str]) -> tuple[tuple[int, ...], dict]:
    channels, _ = _most_common([s[:1] for s in shapes])
    if opts.get("resize") is not None:
        if len(opts["resize"]) != 3:
            raise UnlabeledError(f"volumes resize to DxHxW, got {'x'.join(map(str, opts['resize']))}")
        size = tuple(opts["resize"])
    else:
        common, count = _most_common([s[1:] for s in shapes])
        factor = min(1.0, MAX_VOLUME_SIDE / max(common))
        size = tuple(max(1, round(v * factor)) for v in common)
        if count < len(shapes) or size != common:
            notes.append(f"volumes resampled to {'x'.join(map(str, size))} (pass --resize DxHxW to change)")
    return (channels[0], *size), {}


def _plan_series(shapes: list[tuple[int, ...]], opts: dict[str, Any], notes: list[str]) -> tuple[tuple[int, ...], dict]:
    (channels,), count = _most_common([s[:1] for s in shapes])
    lengths = {s[1] for s in shapes if s[0] == channels}
    if count < len(shapes):
        notes.append(f"most recordings have {channels} channels; others are reported below")
    if len(lengths) > 1:
        notes.append(f"lengths vary from {min(lengths)} to {max(lengths)}: shorter series are padded (masked)")
    return (channels, max(lengths)), {}


def _read_padded_series(path: Path, shape: tuple[int, ...], opts: dict[str, Any]) -> np.ndarray:
    return formats.pad_series([formats.read_series_file(path, shape), np.full(shape, np.nan, np.float32)])[0]


KINDS: dict[str, _Kind] = {
    "image": _Kind(
        "image", "uint8", _image_header, _plan_image, lambda p, s, o: _read_image(p, s, o["resize"] is not None)
    ),
    "tiff": _Kind(
        "image",
        "float32",
        formats.tiff_header,
        _plan_bands,
        lambda p, s, o: formats.read_tiff(p, s, o["resize"] is not None),
    ),
    "npy": _Kind("image", "float32", _npy_header, _plan_npy, lambda p, s, o: _read_npy(p, s)),
    "audio": _Kind(
        "audio",
        "float32",
        formats.audio_header,
        _plan_audio,
        lambda p, s, o: formats.read_audio(p, o["sample_rate"], s[1]),
    ),
    "volume": _Kind(
        "volume", "float32", formats.volume_header, _plan_volume, lambda p, s, o: formats.read_volume(p, s)
    ),
    "series": _Kind("series", "float32", formats.series_header, _plan_series, _read_padded_series),
    # a document comes back boxed in a 0-d array: a bare str is how a reader reports a bad file
    "text": _Kind(
        "text",
        "uint8",
        text_header,
        lambda shapes, opts, notes: ((), {}),
        lambda p, s, o: np.asarray(read_text_file(p), dtype=object),
    ),
}


def _kind_of(files: list[Path], modality: str | None, root: Path) -> tuple[_Kind, list[Path]]:
    """Which files of a folder to import and how: by ``modality`` or by what the files are."""
    by_ext = Counter(suffix(f) for f in files)
    if modality is None:
        found = {m for m, exts in FOLDER_EXTENSIONS.items() if any(e in exts for e in by_ext)}
        if "text" in found and (len(found) > 1 or any(e in ARRAY_EXTENSIONS for e in by_ext)):
            text = sum(n for e, n in by_ext.items() if e in FOLDER_EXTENSIONS["text"])
            if text > len(files) - text:  # documents with a few stray files: a text folder
                found = {"text"}
            else:  # notes (a README.txt) beside the data are not a modality of their own
                found.discard("text")
        if len(found) > 1:
            raise UnlabeledError(
                f"{root} holds files of several modalities ({', '.join(sorted(found))}); pass --modality to pick one"
            )
        modality = found.pop() if found else None
    if modality is None:  # only .npy files (and notes): the shape of the first that reads decides
        arrays = [f for f in files if suffix(f) in ARRAY_EXTENSIONS]
        # the array's own dimensions: the image header's (1, ...) made a 4-D volume's 5, never 4
        ndim = next((d for d in map(_safe(_npy_ndim), arrays) if not isinstance(d, str)), 3)
        kind = {1: KINDS["series"], 4: KINDS["volume"]}.get(ndim, KINDS["npy"])
        return _npy_kind(kind), arrays
    exts = FOLDER_EXTENSIONS[modality] | ARRAY_EXTENSIONS
    chosen = [f for f in files if suffix(f) in exts]
    if not chosen:
        raise UnlabeledError(f"no {modality} files under {root} (looked for {', '.join(sorted(exts))})")
    if modality == "image":
        tiff = any(suffix(f) in TIFF_EXTENSIONS for f in chosen)
        npy = any(suffix(f) in ARRAY_EXTENSIONS for f in chosen)
        plain = any(suffix(f) in IMAGE_EXTENSIONS for f in chosen)
        if tiff + npy + plain > 1:
            raise UnlabeledError(f"{root} mixes image formats (PNG/JPEG, TIFF, .npy); import them separately")
        return KINDS["tiff" if tiff else "npy" if npy else "image"], chosen
    if modality == "text" and any(suffix(f) in ARRAY_EXTENSIONS for f in chosen):
        chosen = [f for f in chosen if suffix(f) not in ARRAY_EXTENSIONS]
        if not chosen:
            raise UnlabeledError(f"no text files under {root} (looked for {', '.join(sorted(TEXT_EXTENSIONS))})")
    if modality in ("volume", "series", "text"):
        return KINDS[modality], chosen
    if any(suffix(f) in ARRAY_EXTENSIONS for f in chosen):
        raise UnlabeledError(f"audio imports from sound files, not .npy ({root})")
    return KINDS[modality], chosen


def _other_modality(ext: str, kind: _Kind) -> str:
    """How to import files a folder's import left out, where another modality reads them."""
    other = [m for m, exts in FOLDER_EXTENSIONS.items() if ext in exts and m != kind.modality]
    return f" ({' or '.join(f'--modality {m}' for m in other)} imports them)" if other else ""


def _npy_kind(kind: _Kind) -> _Kind:
    if kind.modality == "volume":
        return _Kind("volume", "float32", formats.volume_header, _plan_npy, lambda p, s, o: formats.read_volume(p, s))
    return kind


def _scan_folder(root: Path) -> tuple[list[Path], Counter, list[tuple[str, str]]]:
    """The importable files under ``root`` (hidden ones skipped; a symbolic link to a folder is
    followed, each folder walked once), a count of the others by extension, and what could not
    be walked: unreadable folders and links that lead back into the tree, each with its reason
    (never silently dropped)."""
    files, ignored, bad = [], Counter(), []
    known = set().union(*FOLDER_EXTENSIONS.values(), ARRAY_EXTENSIONS)
    walked = {os.path.realpath(root): str(root)}  # each folder's real path -> the path it is walked as

    def unreadable(e: OSError) -> None:
        bad.append((str(e.filename), f"cannot list this folder: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        here = os.path.realpath(dirpath)
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            full, real = os.path.join(dirpath, d), os.path.realpath(os.path.join(dirpath, d))
            if real in walked:
                loop = here == real or here.startswith(real + os.sep)
                what = "symbolic link loop: leads back to" if loop else "leads to"
                bad.append((full, f"{what} {walked[real]}, which is imported once"))
                continue
            walked[real] = full
            keep.append(d)
        dirnames[:] = keep
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            ext = suffix(Path(fn))
            special = _special(Path(dirpath) / fn) if ext in known else ""  # a named pipe waits for a writer
            if special:
                bad.append((os.path.join(dirpath, fn), f"not a regular file ({special})"))
            elif ext in known:
                files.append(Path(dirpath) / fn)
            else:
                ignored[ext or "(no extension)"] += 1
    if not files:
        why = next((r for p, r in bad if p == str(root)), None)
        if why is not None:
            raise UnlabeledError(f"{root}: {why}")
        raise UnlabeledError(f"no importable files under {root} (looked for {', '.join(sorted(known))})")
    return files, ignored, bad


def _special(path: Path) -> str:
    """What ``path`` is when it is neither a regular file nor a broken link (which the reader
    reports): a named pipe, a socket or a device; else ""."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode):
        return ""
    return "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or other"


def _listed(bad: list[tuple[str, str]], limit: int = 3) -> str:
    """The first few bad files and their reasons, on one line."""
    shown = "; ".join(f"{p}: {r}" for p, r in bad[:limit])
    return shown + (f"; and {len(bad) - limit} more" if len(bad) > limit else "")


def _readable(kind: _Kind, entries: list[Any], pool: ThreadPoolExecutor, bad: list, root: Path) -> list[Any]:
    """The entries whose header reads (their shape set); the others go to ``bad``."""
    for e, shape in zip(entries, pool.map(_safe(kind.header), [e.path for e in entries]), strict=True):
        if isinstance(shape, str):
            bad.append((str(e.path), shape))
        else:
            e.shape = shape
    good = [e for e in entries if e.shape is not None]
    if kind is KINDS["npy"]:
        odd = [e for e in good if len(e.shape) != 3]
        bad += [(str(e.path), f"shape {e.shape[1:]} is not an image") for e in odd]
        good = [e for e in good if len(e.shape) == 3]
    if not good:
        raise UnlabeledError(f"none of the {len(entries)} file(s) under {root} could be read: {_listed(bad)}")
    return good


def _write_entries(job: _FolderJob, good: list[Any], writer: CollectionWriter, pool: ThreadPoolExecutor) -> None:
    """Read every entry (in parallel, a chunk at a time) into ``writer``; unreadable ones go to
    ``job.bad``."""
    code = {c: i for i, c in enumerate(writer.classes or [])}
    read = _safe(lambda p: job.kind.read(p, job.shape, job.opts))
    with progress() as bar:
        task = bar.add_task(f"import {job.root.name}", total=len(good))
        for chunk in _chunks(good, CHUNK):
            arrays, kept = [], []
            for e, a in zip(chunk, pool.map(read, [e.path for e in chunk]), strict=True):
                if isinstance(a, str):
                    job.bad.append((str(e.path), a))
                else:
                    arrays.append(a)
                    kept.append(e)
            if kept:
                writer.add(
                    np.stack(arrays),
                    [e.rel for e in kept],
                    [code[e.label] if e.label is not None else NO_LABEL for e in kept],
                    [e.split for e in kept],
                    None if job.group_re is None else [_group_of(job.group_re, e.rel) for e in kept],
                )
            bar.advance(task, len(chunk))


@dataclass
class _FolderJob:
    """One folder import under way: what is read, how, and what went wrong so far."""

    root: Path
    kind: _Kind
    shape: tuple[int, ...]
    opts: dict[str, Any]
    group_re: Any
    bad: list[tuple[str, str]]


def _import_folder(
    root: Path, dest: str | os.PathLike[str], modality: str | None, opts: dict[str, Any], overwrite: bool
) -> ImportReport:
    files, ignored, bad = _scan_folder(root)
    kind, chosen = _kind_of(files, modality, root)
    for option, applies in (("resize", ("image", "volume")), ("sample_rate", ("audio",)), ("seconds", ("audio",))):
        if opts.get(option) is not None and kind.modality not in applies:  # it was ignored
            flag = "--" + option.replace("_", "-")
            raise UnlabeledError(f"{flag} applies to {' and '.join(applies)} folders; {root} holds {kind.modality}")
    if opts.get("resize") is not None and kind.plan is _plan_npy:  # arrays are read as stored: it was ignored
        raise UnlabeledError(f"--resize applies to image and volume files, not .npy arrays ({root})")
    taken = set(chosen)  # once: a set per file made the import quadratic in the files
    ignored.update(suffix(f) for f in files if f not in taken)
    notes = [f"ignored {n} file(s) with extension {e}{_other_modality(e, kind)}" for e, n in sorted(ignored.items())]
    entries = _layout(root, chosen, notes, bad)
    with _bombs_refused(), ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        good = _readable(kind, entries, pool, bad, root)
        shape, meta = kind.plan([e.shape for e in good], opts, notes)
        if kind.modality == "text":  # a document's header is its size in bytes
            notes += cut_note([(str(e.path), e.shape[0]) for e in good])
        job = _FolderJob(root, kind, shape, {**opts, **meta}, _compile_group_pattern(opts.get("group_pattern")), bad)
        if job.group_re is not None:  # a pattern that matched nothing made every file its own group, silently
            notes += _group_matches(job.group_re, good)
        classes = sorted({e.label for e in good if e.label is not None}) or None
        extra = {"name": root.name, "source": str(root), **meta}
        writer = CollectionWriter(Path(dest), kind.modality, shape, kind.dtype, classes, extra, overwrite=overwrite)
        try:
            _write_entries(job, good, writer, pool)
            if not len(writer):
                raise UnlabeledError(
                    f"none of the {len(entries)} file(s) under {root} could be imported: {_listed(bad)}"
                )
            col = writer.close()
        except BaseException:
            writer.abort()
            raise
    notes += writer.outlier_notes()
    return ImportReport(col, str(root), kind.modality, len(col), bad, notes, duplicates=writer.duplicates)


def _group_matches(pattern: re.Pattern[str], good: list[_Entry]) -> list[str]:
    """A note where ``--group-pattern`` leaves some files out, an error where it matches none."""
    alone = [e.rel for e in good if _group_of(pattern, e.rel) is None]
    if good and len(alone) == len(good):
        raise UnlabeledError(
            f"--group-pattern {pattern.pattern!r} matches none of the {len(good)} files' paths (such as {alone[0]})"
        )
    if alone:
        return [
            f"--group-pattern matches {len(good) - len(alone)} of {len(good)} files; {alone[0]} and the others "
            "it does not match are each a group of their own"
        ]
    return []


@contextlib.contextmanager
def _bombs_refused() -> Iterator[None]:
    """While a folder imports, Pillow's warning about an image above its pixel limit is an
    error: such a file (a decompression bomb, or just huge) is reported, never decoded. (The
    warning filter is process-wide: the reading threads see it too.)"""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _reason(path: Path, e: Exception) -> str:
    """Why a file could not be read, in a few words: the system's reason for an OS error
    (without the path again), the empty file, the image Pillow does not recognise."""
    if isinstance(e, OSError) and e.errno is not None:
        if e.errno == errno.ENOENT and path.is_symlink():
            return f"broken symbolic link (to {os.readlink(path)})"
        return e.strerror or str(e)  # Permission denied, Too many levels of symbolic links
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    name = type(e).__name__
    if name == "UnidentifiedImageError":
        return "not an image Pillow can read (another format, truncated or damaged)"
    if name.startswith("DecompressionBomb"):
        return f"refused as a possible decompression bomb: {e}"
    reason = str(e) or name
    return reason if isinstance(e, ValueError) else f"{name}: {reason}"


def _safe(fn: Callable[[Path], object]) -> Callable[[Path], object]:
    """Wrap a reader so a failure comes back as its reason (a str) instead of raising."""

    def run(path: Path) -> object:
        try:
            return fn(path)
        except Exception as e:
            return _reason(path, e)

    return run


def _chunks(items: list[_Entry], n: int) -> Iterator[list[_Entry]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
