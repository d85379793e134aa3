"""Readers for the file formats of every modality, and the UCR/UEA sets bundled in aeon.

Each per-file reader raises ``ValueError`` (or the library's own error) with the reason a
file is bad; the importer turns that into a report line and goes on with the other files.

- series: CSV / TSV / Parquet tables, long (one row per time step, an ``id`` column) or wide
  (one row per sample, one column per time step); ``.ts`` files (the UCR/UEA format, read by
  aeon); one file per recording in a folder (rows = time steps, columns = channels).
- audio: anything libsndfile decodes (wav, flac, ogg), mixed to mono and resampled
  (``scipy.signal.resample_poly``), cropped or zero-padded to one duration.
- volume: NIfTI (``.nii``, ``.nii.gz``, read by nibabel) or ``.npy``, resampled trilinearly to
  one shape.
- multi-band images: TIFF of any number of bands (tifffile).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, not_utf8, short_reason
from unlabeled.data.loaded import Loaded

SERIES_TABLE_EXTENSIONS = {".csv", ".tsv", ".parquet", ".ts"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}
VOLUME_EXTENSIONS = {".nii", ".nii.gz"}
TIFF_EXTENSIONS = {".tif", ".tiff"}
META_COLUMNS = ("id", "label", "split", "group", "time", "channel")


def suffix(path: Path) -> str:
    """The file's extension, lower case, with ``.nii.gz`` kept whole."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def load_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """A ``.npy`` file's array, never unpickled. A file without NumPy's header is said to be
    one (NumPy takes anything else for a pickle and suggests ``allow_pickle``)."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError("not a .npy file (no NumPy header)")
    return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def check_numeric(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it holds real numbers (integers, floats or booleans); raises ValueError
    for text, objects, complex numbers or dates, which no modality stores."""
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_):
        kind = {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers", "M": "dates"}
        raise ValueError(f"holds {kind.get(a.dtype.kind, 'records')} ({a.dtype}), not real numbers")
    return a


FLOAT32_MAX = float(np.finfo(np.float32).max)


def beyond_float32(a: np.ndarray) -> float | None:
    """The first finite value of ``a`` that float32 cannot hold (a cast would make it infinite),
    or None. Only wider floats can hold one: every integer type fits float32's range."""
    if not np.issubdtype(a.dtype, np.floating) or np.finfo(a.dtype).max <= FLOAT32_MAX:
        return None
    big = np.isfinite(a) & (np.abs(a) > FLOAT32_MAX)
    return float(a[big].flat[0]) if big.any() else None


def as_float32(a: np.ndarray) -> np.ndarray:
    """``a`` (real numbers) as float32; a ValueError names what no float32 sample may hold: NaN
    or infinity, or a value beyond float32's range (the cast would have made it infinite, with
    numpy's overflow warning, and reported it as infinity)."""
    a = check_numeric(np.asarray(a))
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError("contains NaN or infinity")
    big = beyond_float32(a)
    if big is not None:
        raise ValueError(f"a value beyond float32's range ({big:g})")
    return a.astype(np.float32, copy=False)


def check_not_empty(shape: tuple[int, ...]) -> None:
    """A ValueError for an array with a dimension of size 0 (it holds no value to read)."""
    if 0 in shape:
        raise ValueError(f"shape {tuple(shape)} has an empty dimension: no values")


# -- series -----------------------------------------------------------------------------------
def pad_series(series: Sequence[np.ndarray]) -> np.ndarray:
    """Stack (C, T_i) arrays into (N, C, max T), NaN after each series' end."""
    channels = {s.shape[0] for s in series}
    if len(channels) > 1:
        raise UnlabeledError(f"series have different numbers of channels: {sorted(channels)}")
    t = max(s.shape[1] for s in series)
    out = np.full((len(series), channels.pop(), t), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[1]] = s
    return out


def _codes(values: Sequence[object]) -> tuple[np.ndarray, list[str]]:
    names = sorted({str(v) for v in values}, key=lambda v: (len(v), v))
    code = {c: i for i, c in enumerate(names)}
    return np.asarray([code[str(v)] for v in values], dtype=np.int64), names


REGRESS_HINT = "a numeric target to regress belongs in a table's column (--column NAME, bench --target-column)"


def fractional_labels(what: str, classes: list[str], hint: str = REGRESS_HINT) -> list[str]:
    """A note when labels (``what``: where they came from) are numbers not all whole (a
    regression target, most likely), which import as that many classes; ``hint`` says what
    to do instead."""
    try:
        values = [float(c) for c in classes]
    except ValueError:
        return []
    fraction = next((c for c, v in zip(classes, values, strict=True) if v % 1), None)
    if fraction is None or not all(map(math.isfinite, values)):  # "nan", "inf": names, not numbers
        return []
    return [
        f"{what} are numbers, not all whole (e.g. {fraction}): each of the {len(classes)} values is a class; {hint}"
    ]


def missing_inside(series: np.ndarray) -> list[str]:
    """A note when series (N, C, T), NaN-padded at the end, miss values before their end: they
    are kept, and read as missing values are (a step missing in every channel is masked as
    padding is; a value missing in some channels is 0 after scaling, the channel's mean)."""
    if not np.issubdtype(series.dtype, np.floating) or series.ndim != 3 or not len(series):
        return []
    gaps = np.isnan(series)
    steps = ~gaps.all(axis=1)  # (N, T): a step with any value
    ends = series.shape[2] - np.argmax(steps[:, ::-1], axis=1)  # one past each series' last real step
    inside = np.arange(series.shape[2])[None, None, :] < ends[:, None, None]
    n = int((gaps & inside).any(axis=(1, 2)).sum())
    if not n:
        return []
    return [
        f"{n} series miss values before their end (NaN, or an empty cell): kept, and read as missing "
        "(a step missing in every channel is masked like padding; otherwise the channel's mean)"
    ]


def _check_series(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as a float32 (channels, steps) series, its trailing all-missing steps cut; a
    ValueError names what is wrong (infinity, a value beyond float32's range, no value)."""
    wide = np.asarray(a, dtype=np.float64)
    if np.isinf(wide).any():
        raise ValueError(f"{what}: contains infinity")
    big = beyond_float32(wide)
    if big is not None:
        raise ValueError(f"{what}: a value beyond float32's range ({big:g})")
    a = wide.astype(np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{what}: not a series (shape {a.shape})")
    real = ~np.isnan(a).all(0)
    if not real.any():
        raise ValueError(f"{what}: every value is missing")
    return a[:, : int(np.flatnonzero(real)[-1]) + 1]  # trailing all-missing steps are padding


def load_ucr(name: str) -> Loaded:
    """A UCR/UEA set bundled in aeon (no download): both splits, and labels for a
    classification set or a float ``target`` column for a regression set (``Covid3Month``)."""
    from aeon.datasets import load_from_ts_file

    root = ucr_dir()
    if not (root / name / f"{name}_TRAIN.ts").is_file():
        raise UnlabeledError(f"ucr:{name} is not bundled in aeon; bundled sets: {', '.join(ucr_names())}")
    series, labels, splits, ids = [], [], [], []
    for split in ("train", "test"):
        X, y = load_from_ts_file(str(root / name / f"{name}_{split.upper()}.ts"))
        for i, x in enumerate(X):
            series.append(_check_series(x, f"{name} {split} {i}"))
            ids.append(f"{split}-{i:05d}")
        labels += list(y)
        splits += [split] * len(X)
    try:
        targets = np.asarray(labels, dtype=np.float64)
        if not np.allclose(targets, np.round(targets)):  # a regression set: the values are a target column
            return Loaded(
                pad_series(series),
                ids,
                None,
                splits,
                None,
                "series",
                f"aeon:{root / name}",
                columns={"target": targets},
            )
    except ValueError:
        pass  # string class names
    codes, classes = _codes(labels)
    return Loaded(pad_series(series), ids, codes, splits, classes, "series", f"aeon:{root / name}")


def ucr_dir() -> Path:
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data"


def ucr_names() -> list[str]:
    """The sets with a train and a test file bundled in aeon (classification, and the
    ``Covid3Month`` regression set)."""
    return sorted(
        d.name
        for d in ucr_dir().iterdir()
        if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file() and d.name != "UnitTest"
    )


def read_series_table(path: Path, keep: Sequence[str] = ()) -> tuple[Loaded, list[tuple[str, str]]]:
    """A table of series: long if it has an ``id`` column repeated over rows (one row per time
    step, every other numeric column a channel), else wide (one row per sample, every numeric
    column a time step). ``label``/``split``/``group`` columns are kept, and so are the
    per-sample columns named in ``keep`` (a regression target, a patient id), as extra
    columns of the collection. Returns the data and the bad rows or series, by reason."""
    import pandas as pd  # pandas and aeon load in a second: only when a table is imported

    if suffix(path) == ".ts":
        return _read_ts(path)
    skipped: list[tuple[str, str]] = []
    try:
        df = _read_table(path, skipped)
    except Exception as e:
        raise UnlabeledError(f"cannot read {path}: {e}") from e
    df.columns = [str(c) for c in df.columns]
    meta, kept, value_cols = _table_columns(path, df, keep)
    _check_single_values(path, df, [*meta.values(), *kept.values()])
    values = df[value_cols].apply(pd.to_numeric, errors="coerce")
    unparsable = values.isna() & df[value_cols].notna()
    # a column with no number in it is not a channel (a free-text note beside the readings):
    # left out and said, instead of failing every row or series that holds it
    wordy = [c for c in value_cols if unparsable[c].any() and unparsable[c].sum() == df[c].notna().sum()]
    if wordy and len(wordy) < len(value_cols):
        value_cols = [c for c in value_cols if c not in wordy]
        values, unparsable = values[value_cols], unparsable[value_cols]
    else:
        wordy = []
    if "id" in meta and _long_table(df[meta["id"]], "time" in meta):
        repeated: list[tuple[str, str]] = []
        if "time" in meta:
            df = _without_repeated_times(path, df, meta["id"], meta["time"], repeated)
            df = df.sort_values([meta["id"], meta["time"]], kind="stable")
            values, unparsable = values.loc[df.index], unparsable.loc[df.index]
        per_series = [meta[k] for k in ("label", "split", "group") if k in meta] + list(kept.values())
        series, ids, rows, bad = _long_series(path, df, meta["id"], values, unparsable, per_series)
        bad = repeated + bad
    else:
        ids_col = df[meta["id"]] if "id" in meta else None
        series, ids, rows, bad = _wide_series(path, ids_col, values, unparsable)
    bad = skipped + bad
    if not series:
        shown = "; ".join(f"{p}: {r}" for p, r in bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        hint = " (a table of text? import it with --text-column NAME)" if "non-numeric" in shown else ""
        raise UnlabeledError(f"no valid series in {path}" + (f": {shown}" if bad else "") + hint)
    of = {k: [df.at[r, meta[k]] for r in rows] for k in ("label", "split", "group") if k in meta}
    codes, classes = (None, None)
    if "label" in of:
        known = [i for i, v in enumerate(of["label"]) if not pd.isna(v)]
        codes_known, classes = _codes([of["label"][i] for i in known])
        codes = np.full(len(series), -1, dtype=np.int64)
        codes[known] = codes_known
    splits = [None if pd.isna(s) else str(s).lower() for s in of["split"]] if "split" in of else None
    groups = [None if pd.isna(g) else str(g) for g in of["group"]] if "group" in of else None
    columns = {k: _column_values(df.loc[rows, c]) for k, c in kept.items()}
    loaded = Loaded(
        pad_series(series), ids, codes, splits, classes, "series", str(path), groups=groups, columns=columns
    )
    if classes is not None:
        loaded.notes += fractional_labels(f"the labels in {path}'s {meta['label']} column", classes)
    if wordy:
        loaded.notes.append(
            f"column(s) {', '.join(wordy)} hold no numbers: not channels, left out (--column NAME keeps one per sample)"
        )
    loaded.notes += _numeric_header(path, list(df.columns))
    return loaded, bad


def _numeric_header(path: Path, names: list[str]) -> list[str]:
    """A note when a CSV's header row is all numbers: column names such as 0, 1, 2 are common,
    but so is a file with no header, whose first row of data was read as the names instead."""
    if suffix(path) == ".parquet":
        return []
    try:
        [float(n) for n in names]
    except ValueError:
        return []
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return [
        f"the header row of {path} is all numbers ({shown}): read as the column names, not as a sample; "
        "if the file has no header row, add one"
    ]


def _read_ts(path: Path) -> tuple[Loaded, list[tuple[str, str]]]:
    """A ``.ts`` file (the UCR/UEA archive's format), read by aeon; where aeon refuses the
    file, case by case (:func:`_ts_cases`), so that a bad case is reported by line and the
    others load."""
    from aeon.datasets import load_from_ts_file  # aeon loads in seconds: only for .ts files

    bad: list[tuple[str, str]] = []
    try:
        X, y = load_from_ts_file(str(path))
        lines = None
    except (ValueError, OSError, IndexError, KeyError, TypeError) as e:  # aeon's reader on a malformed file
        X, y, lines, bad = _ts_cases(path)
        if not X:  # no case reads: the file's fault (or a layout read here case by case does not know)
            first = f"; {bad[0][0]}: {bad[0][1]}" if bad else ""
            raise UnlabeledError(f"cannot read {path} as a .ts file: {short_reason(e)}{first}") from None
    if not len(X):
        raise UnlabeledError(f"{path} holds no series (a .ts file's data follow its @data line)")
    series = [_check_series(x, f"{path}[{i}]") for i, x in enumerate(X)]
    codes, classes = _codes(list(y)) if y is not None and len(y) else (None, None)
    ids = [f"{i:06d}" for i in (lines or range(len(series)))]
    return Loaded(pad_series(series), ids, codes, None, classes, "series", str(path)), bad


def _ts_cases(path: Path) -> tuple[list[np.ndarray], list[str] | None, list[int], list[tuple[str, str]]]:
    """The cases of a ``.ts`` file one line at a time: (series, labels or None, each case's
    place among the data lines, bad lines with their reasons). Values are comma-separated,
    dimensions colon-separated, the class label last when ``@classLabel true``; ``?`` is a
    missing value."""
    labels_of: list[str] | None = None
    series, labels, places, bad, lines = [], [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        in_data, place = False, 0
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                words = line.split()
                if words[0].lower() == "@classlabel" and len(words) > 1 and words[1].lower() == "true":
                    labels_of = words[2:]
                in_data = words[0].lower() == "@data"
                continue
            parts = line.split(":")
            label = parts.pop() if labels_of is not None else None
            try:
                dims = [np.array([np.nan if v.strip() == "?" else float(v) for v in p.split(",")]) for p in parts]
                if not dims or len({len(d) for d in dims}) > 1:
                    raise ValueError("dimensions of different lengths" if dims else "no values")
                if label is not None and labels_of and label not in labels_of:
                    raise ValueError(f"label {label!r} is not one of @classLabel's ({', '.join(labels_of)})")
            except ValueError as e:
                bad.append((f"{path} line {n}", short_reason(e)))
                place += 1
                continue
            series.append(np.stack(dims).astype(np.float32))
            labels.append(label)
            places.append(place)
            lines.append(n)
            place += 1
    # a case of another number of dimensions than the file's others is a bad line (stacked with
    # them, it failed the whole file)
    width = Counter(x.shape[0] for x in series).most_common(1)[0][0] if series else 0
    for i in [i for i, x in enumerate(series) if x.shape[0] != width]:
        why = f"{series[i].shape[0]} dimension(s); the file's other cases have {width}"
        bad.append((f"{path} line {lines[i]}", why))
    keep = [i for i, x in enumerate(series) if x.shape[0] == width]
    series, labels, places = [series[i] for i in keep], [labels[i] for i in keep], [places[i] for i in keep]
    return series, (labels if labels_of is not None else None), places, bad


def _table_columns(path: Path, df: Any, keep: Sequence[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The table's meta columns (id, label, split, group, time: any case), the kept per-sample
    columns, and the value columns (the rest)."""
    lower = {c.lower(): c for c in df.columns}
    meta = {k: lower[k] for k in META_COLUMNS if k in lower}
    missing = [k for k in keep if k.lower() not in lower]
    if missing:
        raise UnlabeledError(f"{path} has no column(s) {', '.join(missing)}; its columns: {', '.join(df.columns)}")
    own = [k for k in keep if k.lower() in (*META_COLUMNS, "shard", "row", "nbytes")]
    if own:  # refused before a collection is begun (the writer raised a traceback half-way)
        raise UnlabeledError(
            f"--column {own[0]}: {own[0]!r} is read as the samples' own {own[0].lower()} or is a collection's "
            "own column name; --column keeps the other columns"
        )
    kept = {k: lower[k.lower()] for k in keep}
    value_cols = [c for c in df.columns if c not in meta.values() and c not in kept.values()]
    if not value_cols:
        raise UnlabeledError(f"{path}: no value columns (besides {', '.join(meta.values())})")
    return meta, kept, value_cols


def _without_repeated_times(path: Path, df: Any, id_col: str, time_col: str, bad: list[tuple[str, str]]) -> Any:
    """The table without the series in which a time step appears in more than one row (two
    readings for one time: which is right cannot be told), each reported in ``bad``."""
    twice = df.duplicated([id_col, time_col], keep=False)
    if not twice.any():
        return df
    for key, times in df.loc[twice].groupby(id_col, sort=False)[time_col]:
        shown = ", ".join(map(str, list(dict.fromkeys(times))[:3]))
        bad.append((f"{path} id={key}", f"time {shown} appears in more than one row"))
    return df.loc[~df[id_col].isin(df.loc[twice, id_col])]


def _long_series(
    path: Path, df: Any, id_col: str, values: Any, unparsable: Any, per_series: Sequence[str] = ()
) -> tuple[list, list, list, list]:
    """Series of a long table (one row per time step): (series, ids, each one's first row, bad).
    A series whose rows disagree on a column of ``per_series`` (its label, split, group: one
    value a sample) is reported: which is right cannot be told, and a row marked test must not
    train inside a series marked train."""
    series, ids, rows_of, bad = [], [], [], []
    nameless = df[id_col].isna()
    if nameless.any():  # groupby drops them without a word
        bad.append((f"{path}", f"{int(nameless.sum())} row(s) without an id: not imported"))
    for key, rows in df.groupby(id_col, sort=False).groups.items():
        if unparsable.loc[rows].any(axis=None):
            bad.append((f"{path} id={key}", "non-numeric values"))
            continue
        differ = next((c for c in per_series if _values_differ(df.loc[rows, c], c.lower() == "split")), None)
        if differ is not None:
            shown = ", ".join(repr(str(v)) for v in list(dict.fromkeys(df.loc[rows, differ].dropna()))[:3])
            bad.append((f"{path} id={key}", f"its rows disagree on {differ} ({shown}): one value a series"))
            continue
        try:
            series.append(_check_series(values.loc[rows].to_numpy().T, f"id={key}"))
        except ValueError as e:
            bad.append((f"{path} id={key}", str(e).split(": ", 1)[-1]))
            continue
        rows_of.append(rows[0])
        ids.append(str(key))
    return series, ids, rows_of, bad


def _values_differ(values: Any, fold_case: bool) -> bool:
    """Whether a series' rows hold more than one value in a column (missing cells aside;
    split names compared as stored, case and surrounding space folded)."""
    present = {str(v).strip().lower() if fold_case else str(v) for v in values.dropna()}
    return len(present) > 1


def long_csv_fields() -> None:
    """Let Python's csv module read a field of any size a document or a series may have: its
    default limit (131,072 characters) stopped an import with ``_csv.Error`` on one long cell."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))


def _record_lines(path: Path, count: int) -> list[tuple[int, int]] | None:
    """(line, record) of each data row pandas read from a CSV/TSV: the line it starts on and
    its place among the file's records, rows pandas skipped (too many fields) counted, so ids
    and messages follow the file. None for Parquet, or where the two readers disagree."""
    if suffix(path) == ".parquet":
        return None
    out = []
    long_csv_fields()
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="\t" if suffix(path) == ".tsv" else ",")
        width = len(next(reader, []))
        start, record_no = reader.line_num + 1, 0
        for record in reader:
            if record:  # a blank line is no record (pandas skips it too)
                if len(record) <= width:  # one with more fields pandas leaves out (on_bad_lines="warn")
                    out.append((start, record_no))
                record_no += 1
            start = reader.line_num + 1
    return out if len(out) == count else None


def _long_table(ids: Any, timed: bool) -> bool:
    """Whether a table with an id column is long (a row per time step): it has a time column,
    or most of its rows share their id with another. One repeated id in a wide table made the
    whole table long (every sample read as a series of one step per column)."""
    return bool(timed or ids.duplicated(keep=False).mean() > 0.5)


def _wide_series(path: Path, ids_col: Any, values: Any, unparsable: Any) -> tuple[list, list, list, list]:
    """Series of a wide table (one row per sample): (series, ids, their rows, bad). A row is
    named by its line (a CSV) or its row (Parquet); without an id column its id is its place
    among the file's rows. A row without an id, or with the id of a row before it, is bad."""
    import pandas as pd

    series, ids, rows_of, bad = [], [], [], []
    first: dict[str, str] = {}
    lines = _record_lines(path, len(values))
    for i, (idx, row) in enumerate(values.iterrows()):
        line, record = lines[i] if lines else (None, i)
        where = f"line {line}" if lines else f"row {i + 1}"
        if ids_col is not None and pd.isna(ids_col.at[idx]):
            bad.append((f"{path} {where}", "no id (its id cell is empty)"))
            continue
        key = str(ids_col.at[idx]) if ids_col is not None else ""
        if key in first:
            bad.append((f"{path} {where}", f"id {key} again (first on {first[key]}): one row a sample"))
            continue
        if ids_col is not None:
            first[key] = where
        if unparsable.loc[idx].any():
            bad.append((f"{path} {where}", "non-numeric values"))
            continue
        try:
            series.append(_check_series(row.to_numpy(), where))
        except ValueError as e:
            bad.append((f"{path} {where}", str(e).split(": ", 1)[-1]))
            continue
        ids.append(str(ids_col.at[idx]) if ids_col is not None else f"{record:06d}")
        rows_of.append(idx)
    return series, ids, rows_of, bad


def _check_single_values(path: Path, df: Any, columns: Sequence[str]) -> None:
    """A table's id, label, split, group, time and kept columns hold one value per row; a column
    of lists or records (a Parquet column of the wrong type) is an UnlabeledError naming it."""
    for c in columns:
        if df[c].dtype != object:
            continue
        odd = next((v for v in df[c] if isinstance(v, list | tuple | dict | set | np.ndarray)), None)
        if odd is not None:
            what = "records" if isinstance(odd, dict) else "lists"
            raise UnlabeledError(f"{path}: column {c!r} holds {what} ({list(odd)!r:.40}), not one value per row")


def _column_values(values: Any) -> np.ndarray:
    """A kept table column: floats when every present value is numeric, else strings."""
    import pandas as pd

    num = pd.to_numeric(values, errors="coerce")
    if not (num.isna() & values.notna()).any():
        return num.to_numpy(dtype=np.float64)
    return np.asarray([None if pd.isna(v) else str(v) for v in values], dtype=object)


_SKIPPED_LINE = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


def _read_table(path: Path, skipped: list[tuple[str, str]] | None = None):  # -> pandas.DataFrame
    """A CSV/TSV/Parquet table. A row of a text table with more fields than the header is an
    error, or with ``skipped`` (from the main thread: the warnings module is process-wide) is
    left out and listed there by line; a first row one field longer than the header is an error
    either way (pandas would silently make the first column an index)."""
    import pandas as pd

    ext = suffix(path)
    if ext == ".parquet":
        return pd.read_parquet(path)
    sep = "\t" if ext == ".tsv" else ","
    try:
        # the id, label, split and group cells as written: pandas' numbers merged labels 01 and 1,
        # made 1 and 2 the classes 1.0 and 2.0 where one cell was empty, and ids 007 and 7 one id
        header = pd.read_csv(path, sep=sep, nrows=0).columns
        as_written = {c: str for c in header if str(c).lower() in ("id", "label", "split", "group")}
        if skipped is None:
            df = pd.read_csv(path, sep=sep, dtype=as_written)
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                df = pd.read_csv(path, sep=sep, on_bad_lines="warn", dtype=as_written)
            for found in _SKIPPED_LINE.finditer("\n".join(str(w.message) for w in caught)):
                line, want, saw = found.groups()
                skipped.append((f"{path} line {line}", f"{saw} fields, the header has {want}"))
    except UnicodeDecodeError as e:
        raise ValueError(not_utf8(e)) from None
    if not df.index.equals(pd.RangeIndex(len(df))):  # pandas took the first column for an index
        raise ValueError(f"the first row has {len(df.columns) + 1} fields, the header {len(df.columns)}")
    # a row shorter than the header reads as missing values at its end, silently: its values
    # would sit under the wrong columns (a label read as a reading). A short row ends in a
    # missing value, so only then are the rows counted
    if ext != ".parquet" and len(df.columns) > 1 and len(df) and df.iloc[:, -1].isna().any():
        short = _short_rows(path, sep, len(df.columns), len(df))
        if short and skipped is None:
            line, saw = short[0][1:]
            raise ValueError(f"line {line}: {_fields(saw, len(df.columns))}")
        skipped.extend((f"{path} line {line}", _fields(saw, len(df.columns))) for _, line, saw in short)
        df = df.drop(index=[row for row, _, _ in short]).reset_index(drop=True)
    return df


def _fields(saw: int, width: int) -> str:
    return f"{saw} field{'s' if saw != 1 else ''}, the header has {width}"


def _short_rows(path: Path, sep: str, width: int, rows: int) -> list[tuple[int, int, int]]:
    """(data row, line, fields) of each row of a text table with fewer fields than its header
    (``width``), counted as pandas counts rows: blank lines and rows longer than the header left
    out. Counted with the csv module, which reads quotes as pandas does; if its rows do not add
    up to the ``rows`` pandas read, the first short row is reported for the whole file."""
    found, row = [], 0
    long_csv_fields()
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=sep)
        next(reader, None)  # the header
        ended = reader.line_num
        for record in reader:
            start, ended = ended + 1, reader.line_num  # the line a record starts on, as text tables say
            if not record or len(record) > width or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) < width:
                found.append((row, start, len(record)))
            row += 1
    if row != rows and found:
        raise ValueError(f"line {found[0][1]}: {_fields(found[0][2], width)}")
    return found


def _headless(path: Path, names: list[str]) -> bool:
    """Whether a recording's CSV has no header row: every name is a number, and not the
    0, 1, 2 ... that pandas writes for unnamed columns (a header). Read with its first row as
    the names, such a file lost its first time step."""
    if suffix(path) == ".parquet":
        return False
    try:
        [float(n) for n in names]
    except ValueError:
        return False
    return names != [str(i) for i in range(len(names))]


def series_header(path: Path) -> tuple[int, ...]:
    """(channels, length) of a one-recording file (CSV/TSV/Parquet rows = time steps, or .npy)."""
    a = read_series_file(path)
    return a.shape


def read_series_file(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """One recording: a table whose rows are time steps and columns channels, or a .npy of
    shape (T,) or (C, T)."""
    ext = suffix(path)
    if ext == ".npy":
        a = check_numeric(load_npy(path))
        if a.ndim > 2:
            raise ValueError(f"shape {a.shape} is not a series ((T,) or (C, T))")
    else:
        import pandas as pd

        df = _read_table(path)
        if _headless(path, [str(c) for c in df.columns]):  # its first time step was read as the names
            df = pd.read_csv(path, sep="\t" if suffix(path) == ".tsv" else ",", header=None)
        df = df[[c for c in df.columns if str(c).lower() not in META_COLUMNS]]
        num = df.apply(pd.to_numeric, errors="coerce")
        if (num.isna() & df.notna()).any(axis=None):
            raise ValueError("non-numeric values")
        a = num.to_numpy().T
    a = _check_series(a, "series")
    if shape is not None and a.shape[0] != shape[0]:
        raise ValueError(f"{a.shape[0]} channels, the collection has {shape[0]}")
    return a


# -- audio -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _audio_errors() -> Iterator[None]:
    """libsndfile's failure as a file's reason in words: its own message names the class and
    repeats the path as bytes (``LibsndfileError: Error opening b'a.wav': Format not recognised.``)."""
    import soundfile as sf

    try:
        yield
    except sf.LibsndfileError as e:
        raise ValueError(f"not a readable audio file ({e.error_string.rstrip('.').lower()})") from None


def audio_header(path: Path) -> tuple[int, ...]:
    """(sample rate, frames) from the file's header."""
    import soundfile as sf

    with _audio_errors():
        info = sf.info(os.fsencode(path))  # bytes: a name that is not UTF-8 opens too
    if info.frames <= 0:
        raise ValueError("no audio frames")
    declared = _wav_declared_frames(path) if info.format == "WAV" else None
    if declared is not None and declared > info.frames:  # libsndfile reads what is there, silently
        raise ValueError(f"truncated: its header declares {declared} frames, the file holds {info.frames}")
    return (int(info.samplerate), int(info.frames))


def _wav_declared_frames(path: Path) -> int | None:
    """The frames a PCM WAV file's header declares (its data chunk's size), or None where the
    standard library cannot read the header (float or extensible WAV)."""
    import wave

    try:
        with open(path, "rb") as f, wave.open(f) as w:  # a file object: any name opens
            return w.getnframes()
    except (wave.Error, EOFError, OSError):
        return None


def _resampling(rate: int, sr: int) -> tuple[int, int]:
    """(up, down): the rational factor that takes ``sr`` to ``rate``."""
    f = Fraction(rate, sr).limit_denominator(1000)
    return f.numerator, f.denominator


def read_audio(path: Path, rate: int, length: int) -> np.ndarray:
    """(1, length) float32 mono at ``rate``: decoded, mixed down, resampled, then cropped or
    zero-padded at the end. Only the frames the crop keeps are decoded (with the resampling
    filter's reach beyond them), so an hour-long file costs what its first seconds do."""
    import soundfile as sf
    from scipy.signal import resample_poly

    with _audio_errors(), sf.SoundFile(os.fsencode(path)) as f:
        sr = f.samplerate
        up, down = _resampling(rate, sr)
        reach = 0 if sr == rate else 10 * max(up, down) // up + 64  # resample_poly's filter, in input frames
        # float64 only for a float64 file, whose values beyond float32's range are named, not made infinite
        dtype = "float64" if f.subtype == "DOUBLE" else "float32"
        data = f.read(frames=min(f.frames, -(-length * sr // rate) + reach), dtype=dtype, always_2d=True)
    if data.size == 0:
        raise ValueError("no audio frames")
    mono = as_float32(data.mean(axis=1, dtype=np.float64))  # mixed down as before: in float64
    if sr != rate:
        mono = as_float32(resample_poly(mono, up, down))
    out = np.zeros((1, length), dtype=np.float32)
    n = min(length, len(mono))
    out[0, :n] = mono[:n]
    return out


# -- volumes -----------------------------------------------------------------------------------
def volume_header(path: Path) -> tuple[int, ...]:
    """(C, D, H, W) without reading the voxels."""
    if suffix(path) == ".npy":
        shape = load_npy(path, "r").shape
    else:
        import nibabel as nib

        shape = nib.load(str(path)).shape
        if len(shape) == 4:
            return (shape[3], *shape[:3])  # NIfTI keeps channels last
    if len(shape) == 3:
        return (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"shape {shape} is not a volume ((D, H, W) or (C, D, H, W))")
    return tuple(shape)


def _wide_voxels(img: Any) -> bool:
    """Whether a NIfTI image's voxels, scaled by its header's slope and intercept, may exceed
    float32's range: those are read in float64, so that such a value is named rather than made
    infinite (an int16 volume with a slope of 1e36 overflowed in float32)."""
    kind = np.dtype(img.get_data_dtype())
    top = float(np.finfo(kind).max if np.issubdtype(kind, np.floating) else np.iinfo(kind).max)
    slope, inter = (float(getattr(img.dataobj, name, default)) for name, default in (("slope", 1.0), ("inter", 0.0)))
    bound = top * (abs(slope) if np.isfinite(slope) else 1.0) + (abs(inter) if np.isfinite(inter) else 0.0)
    return not bound <= FLOAT32_MAX


def read_volume(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """(C, D, H, W) float32, resampled trilinearly to ``shape`` when it differs."""
    if suffix(path) == ".npy":
        a = as_float32(load_npy(path))
        a = a[None] if a.ndim == 3 else a
    else:
        import nibabel as nib

        img = nib.load(str(path))
        if np.issubdtype(img.get_data_dtype(), np.complexfloating):  # get_fdata would drop the imaginary part
            raise ValueError(f"complex-valued voxels ({img.get_data_dtype()}); import their magnitude or real part")
        a = as_float32(np.asarray(img.get_fdata(dtype=np.float64 if _wide_voxels(img) else np.float32)))
        a = a[None] if a.ndim == 3 else np.moveaxis(a, -1, 0)
    if a.ndim != 4:
        raise ValueError(f"shape {a.shape} is not a volume")
    check_not_empty(a.shape)
    if a.shape[0] != shape[0]:
        raise ValueError(f"{a.shape[0]} channels, the collection has {shape[0]}")
    if a.shape[1:] != tuple(shape[1:]):
        import torch
        import torch.nn.functional as F

        t = F.interpolate(torch.from_numpy(a)[None], size=tuple(shape[1:]), mode="trilinear", align_corners=False)
        a = t[0].numpy()
    return a


# -- multi-band TIFF ---------------------------------------------------------------------------
def _tiff_layout(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) != 3:
        raise ValueError(f"TIFF of shape {shape} ({axes}) is not a 2D image with bands")
    if axes.endswith("S") or (axes[-1] not in "YX" and shape[-1] < shape[0]):
        return (shape[2], shape[0], shape[1])  # bands last
    return tuple(shape)


def tiff_header(path: Path) -> tuple[int, ...]:
    """(bands, H, W) from the TIFF's header."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        s = tif.series[0]
        return _tiff_layout(tuple(s.shape), s.axes)


def read_tiff(path: Path, shape: tuple[int, ...], resize: bool) -> np.ndarray:
    """(bands, H, W) float32 of a TIFF (band-last files are transposed)."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        s = tif.series[0]
        a = s.asarray()
        layout = _tiff_layout(tuple(a.shape), s.axes)
    a = a[None] if a.ndim == 2 else (np.moveaxis(a, -1, 0) if layout[0] != a.shape[0] else a)
    a = as_float32(a)
    check_not_empty(a.shape)
    if a.shape[0] != shape[0]:
        raise ValueError(f"{a.shape[0]} bands, the collection has {shape[0]}")
    if a.shape[1:] != tuple(shape[1:]):
        if not resize:
            raise ValueError(
                f"size {a.shape[1]}x{a.shape[2]} differs from the collection's {shape[1]}x{shape[2]} "
                f"(pass --resize {shape[1]}x{shape[2]} to resize)"
            )
        import torch
        import torch.nn.functional as F

        a = F.interpolate(torch.from_numpy(a)[None], size=tuple(shape[1:]), mode="bilinear")[0].numpy()
    return a
