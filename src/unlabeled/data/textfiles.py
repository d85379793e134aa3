"""Reading text sources: one document per ``.txt``/``.md`` file of a folder, or one per row of
a table (``.jsonl``, ``.csv``/``.tsv``, ``.parquet``) with a text column.

A document must be UTF-8, not empty and not binary; one that is not is reported with its path
(and row) and the reason, and the others are imported.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from unlabeled._console import UnlabeledError, not_utf8, short_reason, unencodable
from unlabeled.data.collection import is_missing
from unlabeled.data.formats import _codes, fractional_labels, long_csv_fields, suffix
from unlabeled.data.loaded import Loaded

TEXT_EXTENSIONS = {".txt", ".md"}
TEXT_TABLE_EXTENSIONS = {".jsonl", ".csv", ".tsv", ".parquet"}
DEFAULT_TEXT_COLUMN = "text"
# a document longer than this is cut (and the import says so): no encoder reads further
MAX_DOCUMENT_BYTES = 1 << 20


def cut_document(raw: bytes) -> bytes:
    """``raw``'s first ``MAX_DOCUMENT_BYTES``, less a character the cut split at its end. Bytes
    that are not UTF-8 before it stay, for :func:`decode_document` to report (dropping them, as
    decoding with ``errors="ignore"`` did, passed a damaged long document as sound)."""
    if len(raw) <= MAX_DOCUMENT_BYTES:
        return raw
    head = raw[:MAX_DOCUMENT_BYTES]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.end == len(head) and e.start >= len(head) - 3:  # a character cut in two at the end
            return head[: e.start]
    return head


def cut_note(sizes: list[tuple[str, int]], limit: int = 3) -> list[str]:
    """The import's note on the documents that were cut: ``sizes`` holds (where, bytes) of
    every document; those over ``MAX_DOCUMENT_BYTES`` are named, the first ``limit`` of them."""
    cut = [(where, n) for where, n in sizes if n > MAX_DOCUMENT_BYTES]
    if not cut:
        return []
    shown = ", ".join(f"{where} ({n / 2**20:.1f} MiB)" for where, n in cut[:limit])
    more = f" and {len(cut) - limit} more" if len(cut) > limit else ""
    return [f"{len(cut)} document(s) cut to their first MiB (no encoder reads further): {shown}{more}"]


def decode_document(raw: bytes) -> str:
    """``raw`` as a document, or a ValueError saying why it is not one: empty, binary (a NUL
    byte), or not UTF-8 (the byte and its offset). A UTF-8 byte-order mark is dropped, before
    the check for emptiness (a file of a mark alone was a document of no bytes)."""
    body = raw.removeprefix(b"\xef\xbb\xbf")
    if not body.strip():
        raise ValueError("empty document" if not body else "empty document (only white space)")
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Windows' "Unicode": NUL bytes too, but not binary
        raise ValueError("UTF-16 text (its byte-order mark says so); save it as UTF-8")
    if b"\x00" in body:
        raise ValueError("a binary file, not text (it holds NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(not_utf8(e)) from None  # the offset in the file, mark included
    return text.removeprefix("\ufeff")


def _head(path: Path) -> bytes:
    """As much of a file as a document keeps, cut at a character boundary: a file of gigabytes
    is not read whole (it was, by up to 8 threads at once), nor refused for a byte past the cut."""
    with open(path, "rb") as f:
        return cut_document(f.read(MAX_DOCUMENT_BYTES + 4))


def text_header(path: Path) -> tuple[int, ...]:
    """A text file checked as a document (the folder importer's header); its size in bytes."""
    decode_document(_head(path))
    return (path.stat().st_size,)


def read_text_file(path: Path) -> str:
    """One file as a document (its first ``MAX_DOCUMENT_BYTES``, cut at a character boundary)."""
    return decode_document(_head(path))


def _json_rows(path: Path, bad: list[tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                bad.append((f"{path} line {n}", not_utf8(e)))
                continue
            try:
                row = json.loads(line.rstrip(b"\r\n"))  # its newline is no character of the row
            except json.JSONDecodeError as e:  # "Invalid control character at": the column follows
                bad.append((f"{path} line {n}", f"not JSON ({e.msg.removesuffix(' at')} at column {e.colno})"))
                continue
            except (ValueError, RecursionError) as e:  # a number of 5,000 digits, 100,000 nested brackets
                why = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(";")[0]
                bad.append((f"{path} line {n}", f"not JSON this reader takes ({why})"))
                continue
            if not isinstance(row, dict):
                bad.append((f"{path} line {n}", f"a JSON {type(row).__name__}, not an object"))
                continue
            rows.append({**row, "__line": n})
    return rows


def _csv_rows(path: Path, bad: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The rows of a CSV/TSV by the line they start on (a quoted field may span lines). Python's
    csv module rather than pandas: undecodable bytes stay in their row (as surrogates) to be
    reported with it, not fail the file."""
    # utf-8-sig: a byte-order mark would otherwise stick to the first column's name
    long_csv_fields()
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        lines = f.readlines()
    return _csv_records(path, lines, "\t" if suffix(path) == ".tsv" else ",", bad)


def _csv_records(path: Path, lines: list[str], delimiter: str, bad: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """:func:`_csv_rows`' records, each with the line it starts on. Read strictly: a quote that
    never closes swallowed every later row into one field, silently; now the record it opens is
    reported by its first line and reading starts again on the line after it."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise UnlabeledError(f"{path} line {reader.line_num}: not a readable CSV header ({e})") from None
    if not header:
        raise UnlabeledError(f"{path} is empty (no header row)")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:  # a row's dict would keep the last of them, silently
        where = ", ".join(
            f"{h!r} (columns {', '.join(str(i + 1) for i, c in enumerate(header) if c == h)})" for h in twice
        )
        raise UnlabeledError(f"{path}: its header names a column twice: {where}; rename one")
    rows, ended, offset = [], reader.line_num, 0  # the line the record before ended on
    while True:
        try:
            for record in reader:
                start, ended = ended + 1, offset + reader.line_num
                if not record:
                    continue
                if len(record) != len(header):
                    bad.append((f"{path} line {start}", f"{len(record)} fields, the header has {len(header)}"))
                    continue
                rows.append({**{k: v or None for k, v in zip(header, record, strict=True)}, "__line": start})
            return rows
        except csv.Error as e:  # an unclosed or misplaced quote (or a stray NUL in older Pythons)
            start = ended + 1
            bad.append((f"{path} line {start}", f"a quoted field that does not close where it should ({e})"))
            offset = ended = start  # read again from the line after the record's first
            reader = csv.reader(lines[start:], delimiter=delimiter, strict=True)


def _table_rows(path: Path, bad: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if suffix(path) == ".jsonl":
        return _json_rows(path, bad)
    if suffix(path) in (".csv", ".tsv"):
        return _csv_rows(path, bad)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise UnlabeledError(f"cannot read {path}: {short_reason(e)}") from None
    return [{**row, "__line": n} for n, row in enumerate(table.to_pylist(), 1)]


def read_text_table(path: Path, text_column: str | None = None) -> tuple[Loaded, list[tuple[str, str]]]:
    """One document per row, from column ``text_column`` (default ``text``); ``id``, ``label``,
    ``split`` and ``group`` columns are used when present. Rows whose text is missing, not a
    string, empty or binary are reported by line and left out."""
    bad: list[tuple[str, str]] = []
    rows = _table_rows(path, bad)
    column = text_column or DEFAULT_TEXT_COLUMN
    if rows and not any(column in r for r in rows):
        have = sorted({k for r in rows for k in r if k != "__line"})
        hint = "pass --text-column" if text_column is None else "name one of them with --text-column"
        if len(have) == 1 and ";" in str(have[0]):
            hint = "is it ';'-separated? .csv is read with ',' (and .tsv with tabs)"
        raise UnlabeledError(f"{path} has no column {column!r} (its columns: {', '.join(map(str, have))}); {hint}")
    texts, kept, sizes = [], [], []
    with_ids = any(not is_missing(r.get("id")) for r in rows)
    unit = "line" if suffix(path) != ".parquet" else "row"
    unnamed = _name_rows_without_ids(rows) if with_ids else []
    first: dict[str, int] = {}  # the line each id was first seen on
    for r in rows:
        where = f"{path} {unit} {r['__line']}"
        if r.get("__clash"):
            bad.append((where, f"no id, and its {unit} number {r['id']} is another row's id"))
            continue
        # the id a row imported under (a row left out for its text takes none: the valid row
        # after it of the same id was left out too, as a duplicate of a row not imported)
        if with_ids and str(r["id"]) in first:
            bad.append((where, f"id {str(r['id'])!r} already used on {unit} {first[str(r['id'])]}"))
            continue
        reason = _not_text(r)
        if reason:
            bad.append((where, reason))
            continue
        value = r.get(column)
        if not isinstance(value, str):
            bad.append(
                (
                    where,
                    f"no text in column {column!r}"
                    if value is None or value != value
                    else f"column {column!r} holds {type(value).__name__}, not text",
                )
            )
            continue
        try:
            # a CSV's undecodable bytes come back as the surrogates they were read into (to be
            # reported with their offset); in JSON or Parquet "\udcc3" is a lone surrogate, which
            # the same escape turned into bytes that decoded as another character
            raw = value.encode("utf-8", errors="surrogateescape" if suffix(path) in (".csv", ".tsv") else "strict")
            texts.append(decode_document(cut_document(raw)))
        except UnicodeEncodeError as e:  # a lone surrogate (JSON's "\ud800"): no character at all
            bad.append((where, f"not text: a lone surrogate {value[e.start]!r} at character {e.start}"))
            continue
        except ValueError as e:
            bad.append((where, str(e)))
            continue
        kept.append(r)
        if with_ids:
            first[str(r["id"])] = r["__line"]
        sizes.append((where, len(raw)))
    if not kept:
        raise UnlabeledError(f"no document could be read from {path}" + (f": {bad[0][0]}: {bad[0][1]}" if bad else ""))
    loaded = _loaded_rows(path, texts, kept)
    loaded.notes += cut_note(sizes)
    if unnamed:
        loaded.notes.append(
            f"{len(unnamed)} row(s) of {path} have no id ({unit} {', '.join(map(str, unnamed[:3]))}"
            f"{', ...' if len(unnamed) > 3 else ''}): named by their {unit} numbers, as where no row has one"
        )
    if loaded.classes is not None:
        hint = "text tasks are classification only: a numeric target is not read from a text table"
        loaded.notes += fractional_labels(f"the labels in {path}", loaded.classes, hint)
    return loaded, bad


def _name_rows_without_ids(rows: list[dict[str, Any]]) -> list[int]:
    """Rows without an id, where others have one, given their line (or row) number as id, as
    every row is where none has one; returns those numbers. A number that is another row's
    given id is marked (``__clash``) for the caller to report: the given id keeps its row."""
    given = {str(r["id"]) for r in rows if not is_missing(r.get("id"))}
    unnamed = [r for r in rows if is_missing(r.get("id"))]
    for r in unnamed:
        r["id"] = str(r["__line"])
        r["__clash"] = r["id"] in given
    return [int(r["__line"]) for r in unnamed]


def _not_text(row: dict[str, Any]) -> str | None:
    """Why a row's id, label, split or group cannot be stored as text (bytes that are not UTF-8,
    read as surrogates; JSON's lone surrogate "\\ud800"), or None."""
    for name in ("id", "label", "split", "group"):
        value = row.get(name)
        if isinstance(value, (dict, list, tuple, np.ndarray)):  # JSON objects and arrays, Parquet lists
            return f"column {name!r} holds {type(value).__name__}, not text or a number"
        if is_missing(value):
            continue
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError as e:
            return f"column {name!r} is not UTF-8 text ({unencodable(e)})"
    return None


def _loaded_rows(path: Path, texts: list[str], rows: list[dict[str, Any]]) -> Loaded:
    def column(name: str) -> list[Any] | None:
        if all(is_missing(r.get(name)) for r in rows):
            return None
        return [None if is_missing(r.get(name)) else str(r[name]) for r in rows]  # "" is no label, not a class

    ids = column("id") or [str(r["__line"]) for r in rows]
    labels, classes = None, None
    names = column("label")
    if names is not None:
        present = [n for n in names if n is not None]
        codes, classes = _codes(present)
        it = iter(codes.tolist())
        labels = np.asarray([-1 if n is None else next(it) for n in names], dtype=np.int64)
    return Loaded(
        arrays=np.asarray(texts, dtype=object),
        ids=ids,
        labels=labels,
        splits=column("split"),
        classes=classes,
        modality="text",
        source=str(path),
        groups=column("group"),
    )
