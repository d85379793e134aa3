"""What ``curate`` leaves beside the collection it writes: one record per input document
(``curation.parquet``) and a summary of every step with examples (``curation.json``), read by
``curate --explain``."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from unlabeled._console import UnlabeledError
from unlabeled.curate.rehydrate import rehydration_weights
from unlabeled.data.collection import Collection

RECORDS_FILE = "curation.parquet"  # a row per input document, inside the curated collection
SUMMARY_FILE = "curation.json"  # the request, the counts per step and reason, examples

EXAMPLES = 3  # removed documents shown per step and reason
EMPTY = "empty"  # documents without text: removed as they are read, before every step
EXAMPLE_CHARS = 200


def read_jsonl(folder: Path) -> Iterator[dict[str, Any]]:
    """Every document datatrove's JSONL writer left in ``folder``, in file order, one at a time."""
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            yield from (json.loads(line) for line in f if line.strip())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class Records:
    """Per input position: language, score, step and reason of removal, cluster and size."""

    def __init__(self, n: int) -> None:
        self.language = np.full(n, None, dtype=object)
        self.score = np.full(n, np.nan)
        self.step = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.cluster = np.full(n, -1, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)
        self.kept = np.zeros(n, dtype=bool)
        self.seen = np.zeros(n, dtype=bool)

    def add(self, row: dict[str, Any], step: str | None) -> int:
        meta = row.get("metadata", {})
        p = int(meta["position"])
        self.seen[p] = True
        self.language[p], self.score[p] = meta.get("language"), meta.get("language_score", np.nan)
        self.cluster[p], self.size[p] = meta.get("minhash_cluster_id", -1), meta.get("minhash_cluster_size", 1)
        if step is None:
            self.kept[p] = True
        else:
            self.step[p], self.reason[p] = step, meta.get("filter_reason") or step
        return p


def _short_exact_duplicates(rec: Records, col: Collection) -> None:
    """Exact copies MinHash cannot see, removed as its duplicates are: a document of fewer words
    than its shingles has no signature, so identical short documents were all kept. Among the
    documents that reached the duplicate filter outside any cluster, those of one length are
    compared by content (only they can be equal), and every copy but the first is removed. The
    copies make a cluster of their own, as MinHash's would, whose size the kept one records:
    it said 1, and rehydration counted a document of 49 removed copies as a unique one."""
    alone = np.flatnonzero(rec.seen & (rec.cluster < 0) & ((rec.step == None) | (rec.step == "quality")))  # noqa: E711
    if len(alone) < 2:
        return
    sizes = col.sizes(alone)
    _, inverse, counts = np.unique(sizes, return_inverse=True, return_counts=True)
    same_size = alone[counts[inverse] > 1]
    copies: dict[bytes, list[int]] = {}
    for p, text in zip(same_size.tolist(), col.get(same_size), strict=True):
        group = copies.setdefault(_digest(str(text)), [])
        if group:
            rec.kept[p], rec.step[p], rec.reason[p] = False, "dedup", f"exact duplicate of {col.ids[group[0]]}"
        group.append(p)
    cluster = int(rec.cluster.max(initial=-1)) + 1
    for group in (g for g in copies.values() if len(g) > 1):
        rec.cluster[group], rec.size[group] = cluster, len(group)
        cluster += 1


def _name_duplicates(rec: Records, col: Collection) -> None:
    """A removed duplicate's reason: ``exact duplicate of ID`` or ``near duplicate of ID``,
    ID the document its cluster kept (MinHash keeps one per cluster, not always the first)."""
    dup = np.flatnonzero(rec.step == "dedup")
    if not len(dup):
        return
    survivors = np.flatnonzero((rec.cluster >= 0) & (rec.step != "dedup") & rec.seen)
    keeper = dict(zip(rec.cluster[survivors].tolist(), survivors.tolist(), strict=True))
    positions = np.unique(np.concatenate([dup, survivors]))
    digests = dict(zip(positions.tolist(), (_digest(str(t)) for t in col.get(positions)), strict=True))
    for p in dup.tolist():
        k = keeper.get(int(rec.cluster[p]))
        if k is None:
            continue
        kind = "exact" if digests[p] == digests[k] else "near"
        rec.reason[p] = f"{kind} duplicate of {col.ids[k]}"


def _examples(rec: Records, col: Collection) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    removed = np.flatnonzero(rec.step != None)  # noqa: E711 (elementwise over an object array)
    for p in removed.tolist():
        reason = str(rec.reason[p]).split(" of ")[0]
        shown = out.setdefault(str(rec.step[p]), {}).setdefault(reason, [])
        if len(shown) < EXAMPLES:
            shown.append(f"{col.ids[p]}: {str(col.get([p])[0])[:EXAMPLE_CHARS]}")
    return out


def _summary(rec: Records, steps: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {"input": len(rec.kept), "kept": int(rec.kept.sum()), "steps": {}}
    remaining = len(rec.kept)
    for step in steps:
        m = rec.step == step
        reasons = Counter(str(r).split(" of ")[0] for r in rec.reason[m])
        summary["steps"][step] = {"in": remaining, "removed": int(m.sum()), "reasons": dict(reasons.most_common())}
        remaining -= int(m.sum())
    summary["languages"] = dict(Counter(str(x) for x in rec.language[rec.kept] if x is not None).most_common())
    return summary


def assemble(col: Collection, work: Path, steps: list[str]) -> tuple[pa.Table, dict[str, Any], np.ndarray]:
    """The records table, the summary and the kept documents' weights (in position order),
    from what the stages left in ``work``."""
    rec = Records(len(col))
    for row in read_jsonl(work / "removed" / EMPTY):
        rec.add(row, EMPTY)
    for step in steps:
        for row in read_jsonl(work / "removed" / step):
            rec.add(row, step)
    for row in read_jsonl(work / "kept"):
        rec.add(row, None)
    if not rec.seen.all():  # a bug of ours, said in one line: not a traceback
        lost = col.ids[np.flatnonzero(~rec.seen)[:5]].tolist()
        raise UnlabeledError(f"curate: {int((~rec.seen).sum())} document(s) left no record ({', '.join(lost)} ...)")
    if "dedup" in steps:
        _short_exact_duplicates(rec, col)
    _name_duplicates(rec, col)
    reached = rec.kept | (rec.step == "quality")
    weights = np.zeros(len(col))
    w, rehydration = rehydration_weights(rec.size[reached], rec.step[reached] == "quality")
    weights[reached] = w
    if "quality" not in steps:  # no removal rates to read: every kept document counts once
        weights[rec.kept], rehydration = 1.0, {"note": "no quality step: no rehydration"}
    table = pa.table(
        {
            "id": pa.array(col.ids.astype(str).tolist(), pa.string()),
            "language": pa.array(rec.language.tolist(), pa.string()),
            "score": pa.array(rec.score, pa.float64()),
            "kept": pa.array(rec.kept),
            "step": pa.array(rec.step.tolist(), pa.string()),
            "reason": pa.array(rec.reason.tolist(), pa.string()),
            "cluster": pa.array(rec.cluster),
            "cluster_size": pa.array(rec.size),
            "weight": pa.array(weights),
        }
    )
    shown = [EMPTY, *steps] if (rec.step == EMPTY).any() else steps  # empty documents: a step of their own
    summary = {**_summary(rec, shown), "rehydration": rehydration, "examples": _examples(rec, col)}
    return table, summary, weights[rec.kept]


def explain(summary: dict[str, Any]) -> str:
    """``curate --explain``: per step, what went in, what was removed and why, with examples."""
    lines = [f"{summary['input']:,} documents in, {summary['kept']:,} kept"]
    for step, s in summary["steps"].items():
        lines.append(f"\n{step}: {s['in']:,} in, {s['removed']:,} removed")
        for reason, count in s["reasons"].items():
            lines.append(f"  {count:>8,}  {reason}")
            for example in summary.get("examples", {}).get(step, {}).get(reason, []):
                lines.append(f"            e.g. {example!r}")
    if summary.get("languages"):
        kept = ", ".join(f"{k} {v:,}" for k, v in summary["languages"].items())
        lines.append(f"\nkept by language: {kept}")
    for language, s in (summary.get("thresholds") or {}).items():
        if s.get("relaxed"):
            shown = ", ".join(f"{k}={v}" for k, v in s["relaxed"].items())
            whose = "every language's" if s.get("fitted_to") == "every language's documents" else "its own"
            lines.append(f"{language}'s thresholds relaxed to {whose} documents: {shown}")
    rates = summary.get("rehydration", {}).get("removal_rate_by_cluster_size")
    if rates:
        shown = ", ".join(f"size {g}: {r:.1%} of {n:,}" for g, (n, r) in rates.items())
        lines.append(f"quality removal rate by cluster size: {shown}")
        lines.append(f"upsampled cluster sizes: {', '.join(summary['rehydration']['upsampled_groups']) or 'none'}")
    return "\n".join(lines)
