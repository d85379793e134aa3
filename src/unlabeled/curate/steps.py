"""The pipeline steps datatrove lacks offline, in datatrove's own step and filter types so that
its executors (local, Slurm, Ray) run them beside its filters and MinHash stages:

- :class:`CollectionReader`: a text collection's documents, sharded by rank;
- :class:`Count`: a count per rank that the calling process reads for its progress bar;
- :class:`LanguageID`: language identification by ``langid`` (Lui and Baldwin 2012), whose
  model ships inside the package (datatrove's own filter downloads a fastText model at run
  time), with a confidence threshold and a set of languages to keep;
- :class:`QualityFilters`: datatrove's Gopher repetition, FineWeb and Gopher quality filters
  (the three FineWeb2 keeps, Penedo et al. 2025) built per language from that language's
  thresholds (:mod:`unlabeled.curate.thresholds`); the first that rejects a document gives
  the reason it is removed.

Importing this module also sends datatrove's per-task log to its file alone (not to the
terminal, where the progress bar is); worker processes import it when they unpickle these
steps, so the same holds for them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.executor import base as executor_base
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import minhash
from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.disk_base import DiskWriter
from loguru import logger
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from unlabeled.data.collection import open_collection

FILTERS: dict[str, type[BaseFilter]] = {
    "gopher_repetition": GopherRepetitionFilter,
    "fineweb_quality": FineWebQualityFilter,
    "gopher_quality": GopherQualityFilter,
}


def _task_log_to_file(logging_dir: Any, rank: int, local_rank: int = 0, node_rank: int = -1) -> Any:
    """datatrove's ``add_task_logger`` without its terminal handler."""
    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    logger.add(logfile, colorize=False, level="DEBUG")
    return logfile


def _close_task_log(logfile: Any) -> None:
    """datatrove's ``close_task_logger`` without adding the terminal handler back."""
    logger.remove()
    logfile.close()


# datatrove's logs (per task, and the stats it prints when an executor ends) stay in its
# logging folders: the terminal shows our progress bar and summary
executor_base.add_task_logger = _task_log_to_file
executor_base.close_task_logger = _close_task_log
logger.remove()
minhash.tqdm = functools.partial(tqdm, disable=True)  # the cluster stage's bar over its bucket files


def die_with_the_command() -> None:
    """In a stage's worker process (spawned by datatrove's pool): SIGKILL when the command that
    spawned it dies (PR_SET_PDEATHSIG, Linux). A worker noticed a command killed by SIGKILL (the
    OOM killer's) only when it returned its task's result, so it went on reading and writing the
    stage's files for minutes, an orphan. Nothing is set in the command's own process (a stage
    run without workers, or a caller of the API)."""
    import sys

    import multiprocess

    if sys.platform != "linux" or multiprocess.parent_process() is None:
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    parent = multiprocess.parent_process()
    if parent is not None and not parent.is_alive():  # gone before the signal was set
        os._exit(1)


class CollectionReader(PipelineStep):
    """Documents of the text collection at ``path`` (positions ``rank::world_size``), each with
    its row position in ``metadata["position"]``."""

    name = "collection"
    type = "📖 - READER"

    def __init__(self, path: str, chunk: int = 1000) -> None:
        super().__init__()
        self.path, self.chunk = path, chunk

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        col = open_collection(self.path)
        positions = np.arange(len(col))[rank::world_size]
        for start in range(0, len(positions), self.chunk):
            chunk = positions[start : start + self.chunk]
            for p, text, doc_id in zip(chunk, col.get(chunk), col.ids[chunk], strict=True):
                yield Document(text=_newlines(str(text)), id=str(doc_id), metadata={"position": int(p)})


def _newlines(text: str) -> str:
    """Line breaks as line feeds: datatrove's filters split lines on them, so every line of a
    CRLF document ended in a carriage return, never in punctuation (all of them removed by
    FineWeb's line check, or that check relaxed for every document of the language), and its
    paragraph breaks were not seen. The stored documents keep their own; the curated
    collection copies them from the source by position."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


class Count(PipelineStep):
    """Passes documents on, writing how many have passed to ``folder/RANK`` every ``every``
    (and at the end): what the calling process's progress bar reads, whichever process or
    machine runs the task."""

    name = "count"
    type = "🔢 - STATS"

    def __init__(self, folder: str, every: int = 500) -> None:
        super().__init__()
        self.folder, self.every = folder, every

    def _write(self, rank: int, count: int) -> None:
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{rank:05d}.tmp"
        tmp.write_text(str(count))
        os.replace(tmp, folder / f"{rank:05d}")

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        die_with_the_command()  # every stage with a bar counts its documents with this step
        count = 0
        for doc in data or ():
            yield doc
            count += 1
            if count % self.every == 0:
                self._write(rank, count)
        self._write(rank, count)


class NoText(BaseFilter):
    """Removes documents with no text but whitespace, reason ``empty``, before every step:
    datatrove's reader skips an empty document, so one reached no record and failed the run."""

    name = "empty"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return bool(doc.text.strip()) or (False, "empty")


class LanguageID(BaseFilter):
    """Keeps documents whose language ``langid`` names with probability ``threshold`` or more,
    and, when ``languages`` is given, only those languages; sets ``metadata["language"]`` and
    ``["language_score"]``. Reasons: ``language_score`` (not sure enough), ``language`` (sure,
    but not one of ``languages``)."""

    name = "language id"

    def __init__(
        self, languages: list[str] | None, threshold: float, exclusion_writer: DiskWriter | None = None
    ) -> None:
        super().__init__(exclusion_writer)
        self.languages = set(languages or ())
        self.threshold = float(threshold)
        self._identifier: Any = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # langid's small matrix products are 5x slower with the BLAS's threads than on one
        # (GCIDE entries: 100 against 500 docs/s on 2 cores), and workers would fight over them
        with threadpool_limits(1):
            yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._identifier is None:
            from langid.langid import LanguageIdentifier, model

            self._identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        language, score = self._identifier.classify(doc.text)
        doc.metadata["language"], doc.metadata["language_score"] = language, round(float(score), 4)
        if score < self.threshold:
            return False, "language_score"
        if self.languages and language not in self.languages:
            return False, "language"
        return True


class QualityFilters(BaseFilter):
    """The quality filters of each document's language (``metadata["language"]``), with that
    language's settings from ``settings[language][filter]`` (missing languages: ``default``);
    a rejected document's reason is ``FILTER:REASON`` (``gopher_quality:gopher_short_doc``)."""

    name = "quality"

    def __init__(
        self,
        settings: dict[str, dict[str, dict[str, Any]]],
        steps: list[str],
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(exclusion_writer)
        self.settings, self.steps = settings, steps
        self._filters: dict[str, list[tuple[str, BaseFilter]]] = {}

    def _for(self, language: str) -> list[tuple[str, BaseFilter]]:
        if language not in self._filters:
            settings = self.settings.get(language, self.settings["default"])
            word_language = settings.get("tokenizer", language)
            self._filters[language] = [
                (name, FILTERS[name](**settings.get(name, {}), language=word_language)) for name in self.steps
            ]
        return self._filters[language]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        for name, f in self._for(str(doc.metadata.get("language", "default"))):
            kept, reason = get_filter_result(f.filter(doc))
            if not kept:
                return False, f"{name}:{reason or 'rejected'}"
        return True
