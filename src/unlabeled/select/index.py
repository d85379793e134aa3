"""The embedding index over a pool: unit-normalised embeddings searched by inner product
(cosine similarity) with faiss, exact (``IndexFlatIP``) for pools up to ``ivf_above``
vectors, inverted lists (``IndexIVFFlat``, Jégou et al.'s IVF) beyond. Built from a
(memory-mapped) array in chunks, so the embeddings never need to be in memory twice.

Embeddings of a pool are cached by the pool's fingerprint inside the encoder's run as a
``.npy`` file written chunk by chunk through a memory map.
"""

from __future__ import annotations

import math
import os

import numpy as np

from unlabeled._console import UnlabeledError, info, progress
from unlabeled.data.collection import Collection, left_by_the_dead, writer_tag
from unlabeled.runs import Run, check_unchanged, encode_into

CHUNK = 65536


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, a copy)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pool_embeddings(run: Run, collection: Collection, device: str = "auto") -> np.ndarray:
    """Every sample's embedding by ``run``'s encoder, as a read-only memory map cached in
    ``RUN/selection-embeddings/<fingerprint>-<weights>.npy`` (computed once, written atomically;
    keyed by the pool's content and the run's weights, so weights rewritten in place are not
    served stale embeddings)."""
    folder = run.path / "selection-embeddings"
    step, digest = run.step, run.digest()
    path = folder / f"{collection.fingerprint()}-{digest[:16]}.npy"
    if not path.exists():
        folder.mkdir(exist_ok=True)
        for stale in folder.glob("*.tmp.npy"):  # what a killed select left (SIGKILL runs no cleanup)
            if left_by_the_dead(stale.name.split(".")[-3]):
                stale.unlink(missing_ok=True)
        tmp = path.with_suffix(f".{writer_tag()}.tmp.npy")
        encoder = run.encoder()
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(collection), encoder.dim))
            name = f"embed {collection.name}"
            encode_into(out, encoder, run.modality(), collection, device, name, precision=run.precision)
            out.flush()
            del out
            check_unchanged(run, step, digest)  # the file is named by the weights it was made with
            os.replace(tmp, path)  # whole or absent
        except BaseException:  # interrupted or failed: no half-written cache file stays behind
            tmp.unlink(missing_ok=True)
            raise
    return np.load(path, mmap_mode="r")


class EmbeddingIndex:
    """Cosine-similarity search over a pool's embeddings."""

    def __init__(
        self, vectors: np.ndarray, ivf_above: int = 200_000, nprobe: int = 16, seed: int = 0, queries: int | None = None
    ) -> None:
        """``queries``: how many searches will be made, if known. Inverted lists are built
        for a pool above ``ivf_above`` only when they pay for their training (a k-means of
        ``4 sqrt(n)`` lists over 64 samples per list, 10 passes): a handful of queries, such
        as SimCore's target centroids, is one exact matrix product over the pool instead."""
        # imported here: faiss takes a while to load and only selection needs it, so `import
        # unlabeled` (every CLI command) does not pay for it
        import faiss

        n, d = vectors.shape
        if n == 0:
            raise UnlabeledError("cannot index an empty pool")
        self.dim, self.size = d, n
        nlist = int(4 * math.sqrt(n))
        if n > ivf_above and (queries is None or queries * n > 10 * 64 * nlist * nlist):
            quantizer = faiss.IndexFlatIP(d)
            self.index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))
            self.index.train(normalized(vectors[sample]))
            self.index.nprobe = nprobe
            self.kind = f"IVF{nlist},Flat (nprobe {nprobe})"
        else:
            self.index = faiss.IndexFlatIP(d)
            self.kind = "Flat (exact)"
        with progress() as bar:
            task = bar.add_task("index", total=n)
            for start in range(0, n, CHUNK):
                self.index.add(normalized(vectors[start : start + CHUNK]))
                bar.advance(task, min(CHUNK, n - start))
        info(f"indexed {n} embeddings of dimension {d}: {self.kind}")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, positions), each (len(queries), k), most similar first; positions
        are -1 where fewer than k were found."""
        q = normalized(queries)
        if q.shape[1] != self.dim:
            raise UnlabeledError(f"query embeddings have dimension {q.shape[1]}, the index has {self.dim}")
        return self.index.search(q, min(k, self.size))
