"""Collection: the on-disk form of a dataset that every later stage reads.

A Collection is a folder::

    collection.json     modality, sample shape and dtype, class names, shard files, source
    index.parquet       one row per sample: id, shard, row, and label / split / group if known
    arrays-00000.npy    samples stacked along axis 0, opened with np.load(mmap_mode="r")

Text has no fixed shape, so a text collection (``"layout": "text"`` in ``collection.json``)
stores its documents as UTF-8 bytes, end to end, in ``text-00000.npy`` shards (flat uint8,
memory-mapped like every shard); the index's ``row`` is then a document's byte offset in its
shard and ``nbytes`` its length. One ragged byte array with offsets keeps the promises every
other layout keeps (memory-mapped reads, derived collections that point at the source's shards,
content digests by shard and row) without a second file format; ``get`` decodes the documents
it is asked for and returns them as an array of ``str``.

Ids are stable strings; embeddings, selections and forget requests refer to samples by id.
Shard paths in ``collection.json`` are relative to the folder, so a derived collection (a
selection, say) can point at another collection's shards without copying them.

    col = open_collection("data/fmnist")
    x = col.get(col.indices("train")[:256])     # (256, 1, 28, 28) uint8, read from the memory map
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from unlabeled._console import UnlabeledError, info, short_reason, warn

FORMAT_VERSION = 1
META_FILE = "collection.json"
INDEX_FILE = "index.parquet"
NO_LABEL = -1
RESERVED_COLUMNS = ("id", "shard", "row", "nbytes", "label", "split", "group")
WEIGHT = "weight"  # optional column: how many times pretraining counts a sample (curate's rehydration)
TEXT = "text"  # the modality, and the layout of its collections (ragged UTF-8)


class Collection:
    """A dataset on disk: an index of ids (with optional labels, splits, groups) over
    memory-mapped array shards. Open one with :func:`open_collection`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = read_meta(self.path)
        _check_source(self.path, self.meta)
        table = read_index(self.path, len(self.meta["shards"]), self.meta.get("layout") == TEXT)
        cols = set(table.column_names)
        self.ids: np.ndarray = np.asarray(table.column("id").to_pylist(), dtype=object)
        self._shard = table.column("shard").to_numpy().astype(np.int64)
        self._row = table.column("row").to_numpy().astype(np.int64)
        self._nbytes: np.ndarray | None = table.column("nbytes").to_numpy().astype(np.int64) if self.is_text else None
        self.labels: np.ndarray | None = table.column("label").to_numpy().astype(np.int64) if "label" in cols else None
        self.splits: np.ndarray | None = (
            np.asarray(table.column("split").to_pylist(), dtype=object) if "split" in cols else None
        )
        self.groups: np.ndarray | None = (
            np.asarray(table.column("group").to_pylist(), dtype=object) if "group" in cols else None
        )
        _check_labels(self.path, self.labels, self.meta.get("classes"))
        self._table = table
        self._arrays: list[np.ndarray | None] = [None] * len(self.meta["shards"])
        self._position: dict[str, int] | None = None

    @property
    def columns(self) -> list[str]:
        """Extra per-sample columns of the index (regression targets, metadata such as a
        patient id), beyond ``id``/``label``/``split``/``group``."""
        return [c for c in self._table.column_names if c not in RESERVED_COLUMNS]

    def column(self, name: str) -> np.ndarray:
        """One column of the index by name (``label``, ``group``, ``split`` or an extra
        column): floats for numeric columns (missing values NaN), else objects."""
        internal = ("shard", "row", "nbytes")  # where a sample is stored, not a column of it
        if name not in self._table.column_names or name in internal:
            have = ", ".join(c for c in self._table.column_names if c not in internal)
            raise UnlabeledError(f"{self.path} has no column {name!r}; its columns: {have}")
        col = self._table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        return np.asarray(col.to_pylist(), dtype=object)

    # -- what the collection holds ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"Collection({str(self.path)!r}, n={len(self)}, modality={self.modality!r}, "
            f"shape={self.sample_shape}, classes={len(self.classes) if self.classes is not None else None})"
        )

    @property
    def modality(self) -> str:
        return str(self.meta["modality"])

    @property
    def is_text(self) -> bool:
        """Whether samples are documents (ragged UTF-8) rather than fixed-shape arrays."""
        return self.meta.get("layout") == TEXT

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["sample_shape"])

    @property
    def classes(self) -> list[str] | None:
        return self.meta.get("classes")

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)

    def has_labels(self) -> bool:
        return self.labels is not None and bool((self.labels != NO_LABEL).any())

    def indices(self, split: str | None = None, *, exclude: str | None = None) -> np.ndarray:
        """Row positions of the samples in ``split`` (all when None), minus split ``exclude``.
        A collection without a split column has every sample in every split."""
        keep = np.ones(len(self), dtype=bool)
        if self.splits is not None:
            if split is not None:
                keep &= self.splits == split
            if exclude is not None:
                keep &= self.splits != exclude
        return np.flatnonzero(keep)

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Row positions of the given ids; raises listing the ids that are not here."""
        if self._position is None:
            self._position = {str(i): n for n, i in enumerate(self.ids)}
        missing = [i for i in ids if str(i) not in self._position]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise UnlabeledError(f"{len(missing)} id(s) are not in {self.path}: {shown}")
        return np.asarray([self._position[str(i)] for i in ids], dtype=np.int64)

    # -- reading samples --------------------------------------------------------------------
    def _shard_array(self, s: int) -> np.ndarray:
        arr = self._arrays[s]
        if arr is None:
            arr = self._open_shard(s)
            self._arrays[s] = arr
        return arr

    def _open_shard(self, s: int) -> np.ndarray:
        """Shard ``s`` memory-mapped, checked against ``collection.json`` and the index: a missing,
        damaged or replaced shard is an UnlabeledError naming it, not a wrong sample later."""
        path = self.path / self.meta["shards"][s]
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except OSError as e:
            raise UnlabeledError(f"cannot read {path}, a shard of {self.path}: {e.strerror or e}") from None
        except ValueError as e:
            raise UnlabeledError(f"{path}, a shard of {self.path}, is damaged ({short_reason(e)})") from None
        rows = self._row[self._shard == s]
        if self.is_text:
            return self._check_text_shard(path, arr, s)
        shape, dtype = self.sample_shape, np.dtype(self.meta["dtype"])
        if arr.shape[1:] != shape or arr.dtype != dtype:
            raise UnlabeledError(
                f"{path} holds {arr.dtype} samples of shape {arr.shape[1:]}, but {self.path / META_FILE} says "
                f"{dtype} of shape {shape} (a shard replaced by hand?)"
            )
        if len(rows) and (rows.min() < 0 or rows.max() >= len(arr)):
            raise UnlabeledError(
                f"{path} holds {len(arr)} samples, but {self.path / INDEX_FILE} refers to row {int(rows.max())}"
            )
        return arr

    def _check_text_shard(self, path: Path, arr: np.ndarray, s: int) -> np.ndarray:
        if arr.ndim != 1 or arr.dtype != np.uint8:
            raise UnlabeledError(
                f"{path} holds {arr.dtype} of shape {arr.shape}, but a text shard is flat uint8 (replaced by hand?)"
            )
        m = self._shard == s
        ends = self._row[m] + self._nbytes[m]
        if m.any() and (self._row[m].min() < 0 or ends.max() > len(arr)):
            raise UnlabeledError(
                f"{path} holds {len(arr)} bytes, but {self.path / INDEX_FILE} refers to byte {int(ends.max())}"
            )
        return arr

    def get(self, positions: np.ndarray | Sequence[int] | int) -> Any:
        """The samples at the given row positions, stacked, in the order given (for text,
        an object array of ``str``); one position gives its sample alone."""
        if np.ndim(positions) == 0:
            return self.get([positions])[0]  # type: ignore[list-item]
        pos = np.asarray(positions)
        if not whole_numbers(pos):
            raise UnlabeledError(
                f"get takes row positions (whole numbers), got {pos.dtype} values such as {pos.ravel()[:1].tolist()}; "
                "look ids up with positions(ids)"
            )
        pos = pos.astype(np.int64, copy=False)
        shard, row = self._shard[pos], self._row[pos]
        if self.is_text:
            out = np.empty(len(pos), dtype=object)
            for i, (s, start, n) in enumerate(zip(shard, row, self._nbytes[pos], strict=True)):
                out[i] = bytes(self._shard_array(int(s))[start : start + n]).decode("utf-8")
            return out
        if len(self._arrays) == 1:
            return np.asarray(self._shard_array(0)[row])
        out = np.empty((len(pos), *self.sample_shape), dtype=self.meta["dtype"])
        for s in np.unique(shard):
            m = shard == s
            out[m] = self._shard_array(int(s))[row[m]]
        return out

    def iter_batches(self, positions: np.ndarray, batch_size: int):
        """Yield (positions, samples) in order, ``batch_size`` at a time."""
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            yield chunk, self.get(chunk)

    def fingerprint(self) -> str:
        """Identifies this collection's content; stored beside embeddings to detect staleness."""
        return str(self.meta.get("fingerprint", ""))

    def digest(self, positions: np.ndarray | Sequence[int]) -> str:
        """A hash of the samples at ``positions``, in order: the collection's content
        fingerprint and where each of them is stored (shard and row), so that an index
        rewritten to point rows at other samples gives another digest. Labels, splits and
        other columns are not part of it."""
        pos = np.asarray(positions, dtype=np.int64)
        h = hashlib.sha256(self.fingerprint().encode())
        h.update(self._shard[pos].tobytes())
        h.update(self._row[pos].tobytes())
        return h.hexdigest()

    def sizes(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        """Each sample's stored size in bytes (a document's UTF-8 length), read from the index:
        samples of different sizes cannot be equal, so a search for copies compares only the rest."""
        pos = np.asarray(positions, dtype=np.int64)
        if self._nbytes is not None:
            return self._nbytes[pos]
        return np.full(len(pos), int(np.prod(self.sample_shape)) * np.dtype(self.meta["dtype"]).itemsize, np.int64)

    def content_digests(self, positions: np.ndarray | Sequence[int], batch_size: int = 4096) -> np.ndarray:
        """A hash of each sample at ``positions`` by its content alone (its dtype, shape and
        bytes; a document's text), so that one sample imported into two collections, or twice
        under two ids, has one digest."""
        out = []
        for _, batch in self.iter_batches(np.asarray(positions, dtype=np.int64), batch_size):
            head = f"{batch.dtype}{batch.shape[1:]}".encode()
            out += [hashlib.blake2b(head + np.ascontiguousarray(x).tobytes(), digest_size=16).digest() for x in batch]
        return np.asarray(out, dtype=object)


_META_TYPES = {"modality": str, "sample_shape": list, "dtype": str, "shards": list}
# the axes of each modality's samples (a document has none); images are left to the encoders,
# which say in a line what they take (a writer may store any grid as "image")
_SAMPLE_AXES = {
    "series": ("channels", "time"),
    "audio": ("1", "samples"),
    "volume": ("channels", "depth", "height", "width"),
    TEXT: (),
}
_INDEX_COLUMNS = ("id", "shard", "row")


def read_meta(path: Path) -> dict[str, Any]:
    """A collection's ``collection.json``, checked: missing, not JSON, of another format version,
    or without the entries a reader needs is an UnlabeledError naming the file."""
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise UnlabeledError(
            f"{path} is not a collection (no {META_FILE}); create one with `unlabeled import SOURCE DEST`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UnlabeledError(f"cannot read {meta_path}: {short_reason(e)} (edited by hand?)") from None
    if not isinstance(meta, dict):
        raise UnlabeledError(f"{meta_path} holds {type(meta).__name__}, not an object (edited by hand?)")
    if meta.get("format") != FORMAT_VERSION:
        raise UnlabeledError(
            f"{path}: collection format {meta.get('format')!r} is not supported "
            f"(this version reads format {FORMAT_VERSION})"
        )
    for key, kind in _META_TYPES.items():
        if not isinstance(meta.get(key), kind):
            have = "no entry" if key not in meta else json.dumps(meta[key])
            raise UnlabeledError(f"{meta_path}: {key!r} should be a {kind.__name__}, found {have} (edited by hand?)")
    shape = meta["sample_shape"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise UnlabeledError(f"{meta_path}: sample_shape {shape} is not a list of positive integers")
    axes = _SAMPLE_AXES.get(meta["modality"])
    if axes is not None and len(shape) != len(axes):
        raise UnlabeledError(
            f"{meta_path}: {meta['modality']} samples are ({', '.join(axes) or 'a document'}), but sample_shape is "
            f"{shape} (edited by hand?)"
        )
    try:
        np.dtype(meta["dtype"])
    except TypeError:
        raise UnlabeledError(f"{meta_path}: dtype {meta['dtype']!r} is not a NumPy dtype") from None
    return meta


def _check_labels(path: Path, labels: np.ndarray | None, classes: Any) -> None:
    """The index's label codes against ``collection.json``'s class names: a code past the
    last name (or below ``NO_LABEL``) is an UnlabeledError, where it would otherwise be
    read as a class that has no name, or a classifier built for too few classes."""
    if labels is None or classes is None or not len(labels):
        return
    if not isinstance(classes, list):
        raise UnlabeledError(f"{path / META_FILE}: 'classes' should be a list of names (edited by hand?)")
    low, high = int(labels.min()), int(labels.max())
    if high >= len(classes) or low < NO_LABEL:
        bad = high if high >= len(classes) else low
        raise UnlabeledError(
            f"{path}: {INDEX_FILE} holds label code {bad}, but {META_FILE} names {len(classes)} class(es) "
            "(edited by hand?); import the collection again"
        )


def read_index(path: Path, shards: int, text: bool = False) -> pa.Table:
    """A collection's ``index.parquet``, checked: unreadable, without the id/shard/row columns,
    or referring to a shard ``collection.json`` does not list is an UnlabeledError naming it."""
    index = path / INDEX_FILE
    try:
        table = pq.read_table(index)
    except (OSError, pa.ArrowException) as e:
        raise UnlabeledError(f"cannot read {index}: {short_reason(e)}") from None
    missing = [c for c in (*_INDEX_COLUMNS, *(("nbytes",) if text else ())) if c not in table.column_names]
    if missing:
        raise UnlabeledError(f"{index} has no {', '.join(missing)} column(s); its columns: {table.column_names}")
    shard = table.column("shard").to_numpy()
    if len(shard) and (shard.min() < 0 or shard.max() >= shards):
        raise UnlabeledError(f"{index} refers to shard {int(shard.max())}; {path / META_FILE} lists {shards}")
    return table


def derived_fingerprint(source: Collection, positions: np.ndarray) -> str:
    """The fingerprint :func:`derive_collection` gives the collection of ``source``'s samples
    at ``positions``: a derived collection made again from the same source and rows has it."""
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    return hashlib.sha256(source.fingerprint().encode() + pos.tobytes()).hexdigest()[:16]


def derive_collection(
    source: Collection,
    positions: np.ndarray,
    dest: str | os.PathLike[str],
    extra_meta: dict[str, Any],
    overwrite: bool = False,
) -> Collection:
    """A collection of some of ``source``'s samples that reads ``source``'s shards in place
    (no copy of the data): its index lists the chosen rows, its ``collection.json`` points at
    the source's shard files by relative path. Written atomically."""
    dest = Path(dest)
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    refuse_inside_collection(dest)
    _remove_dead_writers(dest)
    if dest.exists() and not overwrite:
        raise UnlabeledError(f"{dest} already exists; pass --overwrite to replace it")
    check_replaceable(dest)  # a run, its audit log or the user's files are never what --overwrite replaces
    if not len(pos):
        raise UnlabeledError("a derived collection needs at least one sample")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_folder(dest)
    try:
        columns: dict[str, pa.Array] = {
            "id": pa.array([str(i) for i in source.ids[pos]], pa.string()),
            "shard": pa.array(source._shard[pos], pa.int32()),
            "row": pa.array(source._row[pos], pa.int64()),
        }
        if source.is_text:
            columns["nbytes"] = pa.array(source._nbytes[pos], pa.int64())
        if source.labels is not None:
            columns["label"] = pa.array(source.labels[pos], pa.int64())
        for name in ("splits", "groups"):
            values = getattr(source, name)
            if values is not None:
                columns[name[:-1]] = pa.array(values[pos].tolist(), pa.string())
        for name in source.columns:
            columns[name] = source._table.column(name).take(pa.array(pos))
        pq.write_table(pa.table(columns), tmp / INDEX_FILE)
        shards = [os.path.relpath((source.path / s).resolve(), dest.resolve()) for s in source.meta["shards"]]
        digest = derived_fingerprint(source, pos)
        meta = {
            **source.meta,
            "shards": shards,
            "count": len(pos),
            "fingerprint": digest,
            "derived_from": str(source.path.resolve()),
            **extra_meta,
        }
        # the content of the collection whose shards are read (a derived source reads another's)
        owner = source.meta.get("source_fingerprint") if source.meta.get("derived_from") else source.fingerprint()
        meta.pop("source_fingerprint", None)
        if owner:
            meta["source_fingerprint"] = owner
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        move_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Collection(dest)


def _check_source(path: Path, meta: dict[str, Any]) -> None:
    """A derived collection reads another collection's shards in place: refuse it once that
    collection (the folder its shards are in, found through their relative paths, whatever
    chain of derivations led here) has been replaced, imported again with --overwrite: its
    shards now hold other samples."""
    expected = meta.get("source_fingerprint")
    if not meta.get("derived_from") or not expected or not meta.get("shards"):
        return  # older derived collections recorded no fingerprint; a missing source fails on reading
    owner = (path / meta["shards"][0]).resolve().parent
    try:
        now = json.loads((owner / META_FILE).read_text()).get("fingerprint")
    except (OSError, ValueError):
        return
    if now != expected:
        raise UnlabeledError(
            f"{path} reads the samples of {owner}, which has changed since (imported again?): "
            f"its rows would be other samples now; derive it again (select, or the command that made it)"
        )


def is_missing(value: Any) -> bool:
    """A cell with no value: absent, null, NaN (a CSV's or Parquet's empty cell) or blank text.
    A list, mapping or array is a value (of the wrong kind, perhaps), never missing."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return False
    return value is None or value != value or (isinstance(value, str) and not value.strip())


def split_name(value: Any) -> str | None:
    """A sample's split as stored: "TEST" or " Test " is the test split (which every command
    leaves out of training; a split spelt otherwise was trained on), "train" likewise; an empty
    value is no split; any other name is kept as it is."""
    if is_missing(value):
        return None
    text = str(value).strip()
    return text.lower() if text.lower() in ("test", "train") else text


def check_replaceable(dest: Path) -> None:
    """Refuse to write a collection where ``--overwrite`` would delete something else: a run
    (its forget audit log with it), a folder of the user's files, a file, or the folder the
    command runs in. An earlier collection, an empty folder or a new path are fine."""
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise UnlabeledError(f"{dest} is a file, not a collection; choose a new or empty folder")
    if Path.cwd().resolve().is_relative_to(dest.resolve()):
        raise UnlabeledError(f"{dest} is the folder this command runs in (or holds it); choose another folder")
    collection = (dest / META_FILE).is_file()
    held = sorted(p.name for p in dest.iterdir() if not (collection and _COLLECTION_OWNS.fullmatch(p.name)))
    if held:  # a collection's folder too: notes, or a collection written inside it, are the user's
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        what = "besides the collection" if collection else "that are not a collection"
        raise UnlabeledError(
            f"{dest} holds files {what} ({shown}), which --overwrite would delete; choose another folder"
        )


# what a collection's folder holds of its own: its metadata, index and shards, and the records
# of how it was made (select's, curate's, make-authors'), each replaced by an --overwrite
_COLLECTION_OWNS = re.compile(
    r"collection\.json|index\.parquet|(arrays|text)-\d+\.npy|selection\.json|curation\.(json|parquet)"
    r"|authors\.json|(world|general|holdout)\.jsonl|forget\d+\.txt"
)


def whole_numbers(a: np.ndarray) -> bool:
    """Whether ``a`` holds sample positions: integers, or floats that are whole (never booleans,
    which numpy would read as positions 0 and 1, nor strings)."""
    return a.dtype.kind in "iu" or (a.dtype.kind == "f" and bool((a == np.round(a)).all()))


def check_split_name(col: Collection, split: str | None, flag: str = "--exclude-split") -> None:
    """``split`` is one of ``col``'s splits (or None, or ``test``, which a pool may lack): a
    misspelt split to leave out would leave nothing out, and train on the test split."""
    splits = sorted({s for s in col.splits if s is not None}) if col.splits is not None else []
    if split not in (None, "test", *splits):
        shown = ", ".join(splits) or "none"
        raise UnlabeledError(f"{col.path} has no split {split!r} for {flag} to leave out (its splits: {shown})")


def move_into_place(tmp: Path, dest: Path) -> None:
    """Rename the finished folder ``tmp`` to ``dest``. An old ``dest`` is first renamed aside and
    removed only once the new one is in place, so no moment leaves neither."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.{writer_tag()}.", dir=dest.parent))
        os.replace(dest, old / dest.name)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old / dest.name, dest)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def weighted_positions(col: Collection, positions: np.ndarray) -> np.ndarray:
    """Pretraining's pool: each position repeated its ``weight`` times where the collection has
    a ``weight`` column (rounded to whole counts: ``curate``'s rehydration, FineWeb2), so an
    epoch is a pass over the upsampled pool; the positions themselves otherwise."""
    if WEIGHT not in col.columns:
        return positions
    weights = np.asarray(col.column(WEIGHT), dtype=np.float64)[positions]
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise UnlabeledError(f"{col.path}: the {WEIGHT} column must hold finite counts of 0 or more")
    counts = np.rint(weights).astype(np.int64)
    if (counts == 1).all():
        return positions
    info(f"sampling by {col.name}'s {WEIGHT} column: {len(positions)} samples count as {int(counts.sum())}")
    return np.repeat(positions, counts)


def open_collection(path: str | os.PathLike[str] | Collection) -> Collection:
    """Open a collection folder written by ``unlabeled import`` (or pass one through)."""
    if isinstance(path, Collection):
        return path
    if not isinstance(path, str | os.PathLike):
        raise UnlabeledError(
            f"expected a collection (a Collection or the path of its folder), got {type(path).__name__}; "
            "arrays become one with unlabeled.import_source"
        )
    return Collection(path)


def holding_collection(path: str | os.PathLike[str]) -> Path | None:
    """The collection folder that ``path`` is or lies inside, if any: what an output must not
    be written into (``import --overwrite`` of it would delete the output)."""
    path = Path(path)
    return next((p for p in (path, *path.resolve().parents) if (p / "collection.json").exists()), None)


def refuse_inside_collection(dest: Path) -> None:
    """Refuse a new collection at ``dest`` inside another collection's folder: that one's
    ``import --overwrite`` would delete it (and refuse to, once it holds foreign files)."""
    held = holding_collection(Path(dest).parent)
    if held is not None:
        raise UnlabeledError(f"{dest} is inside the collection {held}; write it elsewhere")


def _new_folder(dest: Path) -> Path:
    """A temporary folder beside ``dest`` that becomes it, with the usual permissions (mkdtemp
    makes 0700 folders: a collection others could not read). Its name carries this host and
    pid, so the next writer of ``dest`` removes what a killed one left (``_remove_dead_writers``)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{writer_tag()}.", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


def _host_tag() -> str:
    import socket

    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


_HOST = _host_tag()  # a folder another machine writes (a shared disk) is never this host's to remove


def writer_tag() -> str:
    """``HOST-PID`` of this process: what names a temporary file or folder it writes, so that
    a later writer can tell one a killed process left (:func:`left_by_the_dead`)."""
    return f"{_HOST}-{os.getpid()}"


def _remove_dead_writers(dest: Path) -> None:
    """Remove the temporary folders beside ``dest`` that a writer on this host left when it was
    killed (SIGKILL runs no cleanup): ``.NAME.HOST-PID.XXXXXXXX`` whose PID is gone. A folder the
    old ``dest`` was moved into (``.NAME.old.HOST-PID.XXXXXXXX``) is put back first where the
    kill came between the two renames and left no ``dest``."""
    if not dest.parent.is_dir():
        return
    for leftover in dest.parent.glob(f".{glob.escape(dest.name)}.*{_HOST}-*"):
        tag = leftover.name[len(dest.name) + 2 :].removeprefix("old.").rpartition(".")[0]
        if not left_by_the_dead(tag) or not leftover.is_dir():
            continue
        kept = leftover / dest.name
        if leftover.name.startswith(f".{dest.name}.old.") and kept.is_dir() and not dest.exists():
            os.replace(kept, dest)
        warn(f"removing {leftover}: a write of {dest} that was killed left it")
        shutil.rmtree(leftover, ignore_errors=True)


def left_by_the_dead(tag: str) -> bool:
    """Whether ``HOST-PID`` (:func:`writer_tag`) names a process of this host that is gone."""
    host, _, pid = tag.rpartition("-")
    return host == _HOST and pid.isdigit() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read_umask() -> int:
    umask = os.umask(0)  # the only way to read it is to set it: done once, at import
    os.umask(umask)
    return umask


_UMASK = _read_umask()


@dataclass
class CollectionWriter:
    """Writes a collection atomically: everything goes to a temporary folder beside ``dest``,
    which replaces ``dest`` only when :meth:`close` succeeds. Samples are buffered into shards
    of at most ``shard_bytes``. With ``modality="text"`` the samples are strings, stored as
    ragged UTF-8 (``sample_shape`` is then ``()`` and ``dtype`` ``uint8``)."""

    dest: Path
    modality: str
    sample_shape: tuple[int, ...]
    dtype: str
    classes: list[str] | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)
    shard_bytes: int = 256 << 20
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.dest = Path(self.dest)
        refuse_inside_collection(self.dest)
        _remove_dead_writers(self.dest)
        if self.dest.exists() and not self.overwrite:
            raise UnlabeledError(f"{self.dest} already exists; pass --overwrite to replace it")
        check_replaceable(self.dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _new_folder(self.dest)
        self.text = self.modality == TEXT
        if self.text:
            self.sample_shape, self.dtype = (), "uint8"
            self.extra_meta = {**self.extra_meta, "layout": TEXT}
        per = max(1, int(np.prod(self.sample_shape)) * np.dtype(self.dtype).itemsize)
        self._shard_rows = max(1, self.shard_bytes // per)
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._shards: list[str] = []
        self._rows: dict[str, list[Any]] = {"id": [], "shard": [], "row": [], "nbytes": []}
        self._label: list[int] = []
        self._split: list[str | None] = []
        self._group: list[str | None] = []
        self._extra: dict[str, list[Any]] = {}
        self._hash = hashlib.sha256()
        self._seen: dict[bytes, str] = {}
        self.duplicates: list[tuple[str, str]] = []  # (id, id of the earlier sample with the same content)
        self._peaks: list[np.ndarray] = []  # each float sample's largest magnitude (outlier_notes)

    def add(
        self,
        arrays: np.ndarray,
        ids: Sequence[str],
        labels: Sequence[int] | None = None,
        splits: Sequence[str | None] | None = None,
        groups: Sequence[str | None] | None = None,
        columns: dict[str, Sequence[Any]] | None = None,
    ) -> None:
        """Append samples (stacked along axis 0) with their ids and optional columns
        (``columns``: extra per-sample values by column name, e.g. a regression target); for
        text, ``arrays`` is a sequence of ``str``."""
        if self.text:
            blobs = [str(t).encode("utf-8") for t in arrays]
            n = len(blobs)
            if len(ids) != n:
                raise ValueError(f"{len(ids)} ids for {n} samples")
            self._add_text(blobs)
        else:
            arrays = np.ascontiguousarray(arrays, dtype=self.dtype)
            if arrays.shape[1:] != tuple(self.sample_shape):
                raise ValueError(f"sample shape {arrays.shape[1:]} != {self.sample_shape}")
            n = len(arrays)
            if len(ids) != n:
                raise ValueError(f"{len(ids)} ids for {n} samples")
            self._add_arrays(arrays)
            blobs = [a.tobytes() for a in arrays]
            if np.issubdtype(arrays.dtype, np.floating) and n:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN series' padding
                    self._peaks.append(np.nanmax(np.abs(arrays.reshape(n, -1)), axis=1))
        self._add_columns(ids, n, labels, splits, groups, columns)
        for sample_id, blob in zip(ids, blobs, strict=True):  # exact duplicates, by content hash
            if self.text:  # documents vary in length: ["ab", "c"] and ["a", "bc"] hashed alike without it
                self._hash.update(len(blob).to_bytes(8, "little"))
            self._hash.update(blob)
            digest = hashlib.blake2b(blob, digest_size=16).digest()
            first = self._seen.setdefault(digest, str(sample_id))
            if first != str(sample_id):
                self.duplicates.append((str(sample_id), first))

    def outlier_notes(self, factor: float = 1e4) -> list[str]:
        """A note naming the float samples whose largest magnitude is over ``factor`` times the
        median sample's: the modalities normalise with a mean and std over the collection, which
        one such sample decides for all (a volume of 4.6e18 beside volumes of 1 made every
        probe score chance)."""
        if not self._peaks:
            return []
        peaks = np.concatenate(self._peaks)
        # the median over samples that hold something: with half of them silent (or empty
        # masks) a median of 0 hid a sample of 1e30
        held = peaks[np.isfinite(peaks) & (peaks > 0)]
        median = float(np.median(held)) if len(held) else 0.0
        far = np.flatnonzero(peaks > factor * median) if median > 0 else np.array([], dtype=np.int64)
        if not len(far):
            return []
        shown = ", ".join(f"{self._rows['id'][i]} ({peaks[i]:.3g})" for i in far[:5]) + (" ..." if len(far) > 5 else "")
        return [
            f"{len(far)} sample(s) reach values over {factor:g} times the median sample's largest ({median:.3g}): "
            f"{shown}; the normalisation (a mean and std over the collection) would be theirs: remove or rescale them"
        ]

    def _add_arrays(self, arrays: np.ndarray) -> None:
        n, start = len(arrays), 0
        while start < n:
            take = min(n - start, self._shard_rows - self._buffered)
            part = arrays[start : start + take]
            self._rows["shard"].extend([len(self._shards)] * take)
            self._rows["row"].extend(range(self._buffered, self._buffered + take))
            self._buf.append(part)
            self._buffered += take
            start += take
            if self._buffered == self._shard_rows:
                self._flush()
        self._rows["nbytes"].extend([0] * n)

    def _add_text(self, blobs: list[bytes]) -> None:
        """Documents appended to the current byte shard (a new one once it holds ``shard_bytes``)."""
        for blob in blobs:
            if self._buffered and self._buffered + len(blob) > self.shard_bytes:
                self._flush()
            self._rows["shard"].append(len(self._shards))
            self._rows["row"].append(self._buffered)
            self._rows["nbytes"].append(len(blob))
            self._buf.append(np.frombuffer(blob, dtype=np.uint8))
            self._buffered += len(blob)

    def _add_columns(
        self,
        ids: Sequence[str],
        n: int,
        labels: Sequence[int] | None,
        splits: Sequence[str | None] | None,
        groups: Sequence[str | None] | None,
        columns: dict[str, Sequence[Any]] | None,
    ) -> None:
        self._rows["id"].extend(str(i) for i in ids)
        self._label.extend([NO_LABEL] * n if labels is None else [int(v) for v in labels])
        self._split.extend([None] * n if splits is None else [split_name(s) for s in splits])
        self._group.extend([None] * n if groups is None else list(groups))
        for name in dict.fromkeys([*self._extra, *(columns or {})]):
            if name in RESERVED_COLUMNS:
                own = ", ".join(RESERVED_COLUMNS)
                raise UnlabeledError(f"{name!r} is a collection's own column ({own}), not one to add")
            values = (columns or {}).get(name)
            if values is not None and len(values) != n:
                raise ValueError(f"{len(values)} values of column {name!r} for {n} samples")
            have = self._extra.setdefault(name, [None] * (len(self._label) - n))
            have.extend([None] * n if values is None else list(values))

    def _flush(self) -> None:
        if not self._buffered:
            return
        name = f"{'text' if self.text else 'arrays'}-{len(self._shards):05d}.npy"
        np.save(self._tmp / name, np.concatenate(self._buf, axis=0))
        self._shards.append(name)
        self._buf, self._buffered = [], 0

    def __len__(self) -> int:
        return len(self._rows["id"])

    def close(self) -> Collection:
        """Write the index and metadata, then move the finished folder to ``dest``; on any
        failure the temporary folder is removed and ``dest`` is left as it was."""
        try:
            return self._close()
        except BaseException:
            self.abort()
            raise

    def _close(self) -> Collection:
        self._flush()
        ids = self._rows["id"]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dups = list(dict.fromkeys(i for i in ids if i in seen or seen.add(i)))
            shown = ", ".join(dups[:5]) + (" ..." if len(dups) > 5 else "")
            raise UnlabeledError(f"{len(dups)} id(s) occur more than once, so {self.dest} was not written: {shown}")
        columns: dict[str, pa.Array] = {
            "id": pa.array(ids, pa.string()),
            "shard": pa.array(self._rows["shard"], pa.int32()),
            "row": pa.array(self._rows["row"], pa.int64()),
        }
        if self.text:
            columns["nbytes"] = pa.array(self._rows["nbytes"], pa.int64())
        if any(v != NO_LABEL for v in self._label):
            columns["label"] = pa.array(self._label, pa.int64())
        if any(v is not None for v in self._split):
            columns["split"] = pa.array(self._split, pa.string())
        if any(v is not None for v in self._group):
            columns["group"] = pa.array(self._group, pa.string())
        for name, values in self._extra.items():
            columns[name] = pa.array(values)
        pq.write_table(pa.table(columns), self._tmp / INDEX_FILE)
        meta = {
            "format": FORMAT_VERSION,
            "modality": self.modality,
            "sample_shape": list(self.sample_shape),
            "dtype": str(np.dtype(self.dtype)),
            "classes": self.classes,
            "shards": self._shards,
            "count": len(ids),
            "fingerprint": self._hash.hexdigest()[:16],
            "exact_duplicates": len(self.duplicates),
            **self.extra_meta,
        }
        (self._tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if self.dest.exists() and not self.overwrite:
            raise UnlabeledError(f"{self.dest} already exists; pass --overwrite to replace it")
        move_into_place(self._tmp, self.dest)
        return Collection(self.dest)

    def side_file(self, name: str) -> Path:
        """A path inside the collection being written, for a file that goes with it (a record
        of how it was made): :meth:`close` moves it into place with the rest."""
        return self._tmp / name

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
