"""``train(spec, ...)``: the one way a run folder is made. Pretraining, fine-tuning, SISA
shards, forget's retraining and ``--resume`` build a :class:`~unlabeled.train.spec.RunSpec`
and call :func:`train`; it builds the encoder and objective from the spec, loads the starting
weights, claims the folder (only once the run is known to start), writes ``config.json`` and
the training ids, and runs the one :class:`~unlabeled.train.trainer.Trainer`.

:func:`train_shards` is the SISA layout (Bourtoule et al. 2021, "Machine Unlearning") for any
spec: one run per disjoint shard in ``OUT/shards/NN``, then the top-level ``config.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info, warn
from unlabeled._settings import check_count
from unlabeled.data.collection import (
    Collection,
    holding_collection,
    open_collection,
    weighted_positions,
    whole_numbers,
)
from unlabeled.data.mixture import Mixture
from unlabeled.modalities import modality_from_state
from unlabeled.models import build_encoder, saved_options
from unlabeled.objectives import build_objective, self_distil
from unlabeled.objectives.base import Objective
from unlabeled.runs import (
    ANCESTORS,
    FORGOTTEN_IDS,
    SHARDS,
    TRAINING_IDS,
    Run,
    encoder_weights,
    load_checked,
    lock_file,
    open_run,
    read_config,
    read_ids,
    refuse_losing_audit,
    same_samples,
    shard_split,
    write_ids,
)
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import distributed as dist
from unlabeled.train.sampling import MixSampler, Sampler
from unlabeled.train.spec import InitSpec, RunSpec, file_hash, ids_hash, index_hash
from unlabeled.train.trainer import TrainConfig, Trainer


def environment(dev: torch.device) -> dict[str, Any]:
    """Where a run ran: library versions and the device (recorded in config.json)."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(dev),
        "world_size": dist.world_size(),
    }


_HELD: dict[Path, int] = {}  # run folders this process holds the lock of -> how many times


@contextlib.contextmanager
def run_lock(out: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the run folder ``out`` for this process while a command writes it: a second
    process that tries to write the same run (a second ``pretrain`` into the same ``--out``,
    with ``--resume`` or ``--overwrite``) gets an UnlabeledError naming the holder's pid
    instead of removing or interleaving with a run in progress. Re-entrant within a process;
    taken by rank 0 alone under ``torchrun``; the lock file goes when released (``flock``:
    the system releases it if the process dies)."""
    out = Path(out).resolve()
    if out in _HELD or int(os.environ.get("RANK", "0")) != 0:
        _HELD[out] = _HELD.get(out, 0) + 1
        try:
            yield
        finally:
            _HELD[out] -= 1
            if not _HELD[out]:
                del _HELD[out]
        return
    check_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(out, lock_file(out))
    _HELD[out] = 1
    _remove_stale_temporaries(out)
    try:
        yield
    finally:
        del _HELD[out]
        with contextlib.suppress(OSError):
            lock_file(out).unlink()
        os.close(fd)  # releases the lock


# what a run's writer writes atomically, through a temporary ``.NAME.XXXXXXXX.tmp`` beside it
_RUN_FILES = (ckpt.MODEL_FILE, ckpt.STATE_FILE, "config.json", TRAINING_IDS)


def _remove_stale_temporaries(out: Path) -> None:
    """The temporary files a killed writer of the run left (SIGKILL runs no cleanup): with the
    run's lock held no other process writes them, so they are removed."""
    if not out.is_dir():
        return
    for name in _RUN_FILES:
        for stale in out.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()


def _acquire(out: Path, lock: Path) -> int:
    """An open descriptor of ``lock`` holding its exclusive lock, with this pid written in it."""
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UnlabeledError(
                f"{out} is being written by another process (pid {holder}); wait for it to finish or use another --out"
            ) from None
        try:  # the holder before us may have removed the file between our open and our lock
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


# what a run's folder may hold before its config.json: a sharded run's shards, the ancestors a
# forget request retrains first, the id files and weights written just before it (a run killed
# between them; grow writes its weights first), WHP's reinforced model, an atomic write's
# temporary file (hidden)
CONFIG = "config.json"
RUN_LEFTOVERS = {
    *(SHARDS, ANCESTORS, TRAINING_IDS, FORGOTTEN_IDS, "labelled-ids.txt", "unlabelled-ids.txt"),
    *("metrics.jsonl", "model.safetensors", "state.pt", "snapshots", "reinforced"),
}


def refuse_out_at(out: Path, run: Run | None, what: str, advice: str = "write elsewhere") -> None:
    """Refuse an ``--out`` that is ``run``, or inside it, which the command reads (``what`` it
    is to it): a result inside its original was removed with it by a later --overwrite."""
    if run is None:
        return
    mine, theirs = Path(out).resolve(), run.path.resolve()
    if mine == theirs:
        raise UnlabeledError(f"--out {out} is {what}; {advice}")
    if theirs in mine.parents:
        raise UnlabeledError(f"--out {out} is inside {run.path}, {what}; {advice}")


def check_parents(out: Path) -> None:
    """Refuse an ``out`` below a file (``--out notes.txt/run``): making its folder failed with
    the system's bare "File exists"."""
    for parent in Path(out).parents:
        if parent.exists():
            if not parent.is_dir():
                raise UnlabeledError(f"{parent} is a file, so {out} cannot be made inside it; choose another folder")
            return


def check_run_folder(out: Path) -> None:
    """Refuse an ``--out`` that cannot hold a run whatever the flags: a file, a collection, a
    folder inside a collection (``import --overwrite`` of it would delete the run)."""
    out = Path(out)
    check_parents(out)
    if out.exists() and not out.is_dir():
        raise UnlabeledError(f"{out} is a file; a run is a folder: choose a new or empty one")
    held = holding_collection(out)
    if held == out:
        raise UnlabeledError(f"{out} is a collection, not a run folder; write the run elsewhere")
    if held is not None:
        raise UnlabeledError(f"{out} is inside the collection {held}; write the run elsewhere")


def claim_run_dir(out: Path, resume: bool, overwrite: bool, remove: bool = True, resumable: bool = True) -> bool:
    """Check that ``out`` can take a new run (or holds one to resume); with ``overwrite``
    remove the run there (rank 0, after every rank has looked), or with ``remove=False`` leave
    that to :func:`remove_run_dir` once the caller knows the new run can start. Returns whether
    an old run is to be replaced. ``resumable``: whether the command has a --resume to suggest."""
    has_run = (out / "config.json").exists()
    if resume and overwrite:
        raise UnlabeledError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    check_run_folder(out)
    if not has_run and out.is_dir():
        # a new run goes into a new or empty folder (or one an interrupted sharded run left):
        # --overwrite later removes a run's folder whole, with whatever else was put in it
        try:
            names = [p.name for p in out.iterdir()]
        except FileNotFoundError:  # removed meanwhile (another rank's --overwrite)
            names = []
        other = sorted(n for n in names if n not in RUN_LEFTOVERS and not n.startswith("."))
        if other:
            shown = ", ".join(other[:5]) + (" ..." if len(other) > 5 else "")
            raise UnlabeledError(f"{out} holds files that are not a run ({shown}); choose a new or empty folder")
    if resume and not has_run:
        raise UnlabeledError(f"nothing to resume: {out} holds no run")
    if has_run and not resume:
        if not overwrite:
            how = "pass --resume to continue it or --overwrite" if resumable else "pass --overwrite to replace it"
            raise UnlabeledError(f"{out} already holds a run; {how}")
        refuse_losing_audit(out)
        if remove:
            remove_run_dir(out)
        return True
    return False


def set_aside(out: Path) -> Path | None:
    """Move the run in ``out`` aside (rank 0; every rank waits), to be removed by
    :func:`put_back` once the run replacing it has a checkpoint, or put back where it has none:
    ``--overwrite`` with a budget shorter than one step removed the old run and then stopped."""
    aside = out.parent / f".{out.name}.replaced-{os.getpid()}"
    dist.barrier()
    if dist.rank() == 0:
        for stale in out.parent.glob(f".{out.name}.replaced-*"):  # a killed process's (SIGKILL runs no cleanup)
            if not _alive(stale.name.rpartition("-")[2]):
                shutil.rmtree(stale, ignore_errors=True)
        out.rename(aside)
    dist.barrier()
    return aside


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (text) still runs (as itself or another user's)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def put_back(aside: Path | None, out: Path) -> None:
    """The end of :func:`set_aside`: drop the old run where the new one in ``out`` has a
    checkpoint (it resumes from there), else put it back in place of what the new one left."""
    if aside is None or dist.rank() != 0 or not aside.exists():
        return
    if (out / ckpt.STATE_FILE).exists() or any((out / SHARDS).glob(f"*/{ckpt.STATE_FILE}")):  # a shard's too
        shutil.rmtree(aside)
        return
    if out.exists():
        shutil.rmtree(out)
    aside.rename(out)
    info(f"note: {out} holds the run it held before (the new one stopped before its first checkpoint)")


def remove_run_dir(out: Path) -> None:
    """Remove the run in ``out`` (rank 0, after every rank has looked; every rank goes on once
    it is gone, so none writes into the folder while it is being removed)."""
    dist.barrier()
    if dist.rank() == 0:
        shutil.rmtree(out)
    dist.barrier()


def training_positions(col: Collection, spec: RunSpec, out: Path) -> np.ndarray:
    """The positions a resumed run trained on: its ids file, else the collection less the
    excluded split."""
    ids_file = out / TRAINING_IDS
    if ids_file.exists():
        return col.positions(read_ids(ids_file))
    return col.indices(exclude=spec.data.exclude_split)


def load_start(objective: Objective, src: Run) -> str:
    """Load ``src``'s weights into ``objective``: every weight when the saved state fits it
    (same method and settings: the heads go on too), else the encoder alone. Returns which."""
    weights = src.weights()
    own = objective.state_dict()
    try:
        if weights.keys() == own.keys() and all(weights[k].shape == own[k].shape for k in own):
            objective.load_state_dict(weights)
            return "every weight"
        objective.load_encoder(encoder_weights(weights, src.config["encoder"].get("weights", "encoder")))
    except RuntimeError as e:
        reason = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise UnlabeledError(
            f"--init {src.path}: its encoder (inputs {tuple(src.config['encoder']['sample_shape'])}) does not fit "
            f"inputs {tuple(objective.modality.input_shape)}: {reason}"
        ) from None
    return "the encoder"


def build(spec: RunSpec, start: Run | None = None, encoder_only: bool = False) -> tuple[Objective, RunSpec]:
    """The objective a spec describes, seeded with the spec's seed, started from ``start``'s
    weights (the encoder alone with ``encoder_only``), and the spec completed with what the
    objective resolved (its settings' defaults, the submodule that holds the encoder)."""
    torch.manual_seed(spec.train.seed)
    e = spec.encoder
    enc = build_encoder(e.name, e.size, e.sample_shape, **saved_options(e.to_json()))
    if start is not None and encoder_only:  # a classifier from a pretrained run: its encoder
        weights = start.weights(start.config["encoder"].get("weights", "encoder"))
        load_checked(enc, weights, start.path / ckpt.MODEL_FILE)
    own, distil = self_distil.split_options(spec.objective.options)
    objective = build_objective(spec.objective.name, enc, modality_from_state(spec.modality), **own)
    if distil:
        distil = with_teacher(objective, spec, distil)
    spec = spec.replace(
        objective=replace(spec.objective, options={**objective.hparams(), **distil}),
        encoder=replace(e, weights=objective.export),
    )
    if start is not None and not encoder_only:
        loaded = load_start(objective, start)
        spec = spec.replace(init=replace(spec.init, loaded=loaded))
        info(f"starting from {start.path} (step {start.step}): {loaded}")
    return objective, spec


def with_teacher(objective: Objective, spec: RunSpec, options: dict[str, Any]) -> dict[str, Any]:
    """Attach the self-distillation penalty (``--option self_distil=W``; the teacher is
    ``--option teacher=RUN`` or the ``--init`` run) and return its settings as the run records
    them: the teacher's resolved path and the hash of its weights, checked when it is loaded
    again on resume."""
    path = options.get("teacher") or (spec.init.run if spec.init is not None else None)
    if path is None:
        raise UnlabeledError("self_distil regularises continued pretraining: give --init RUN or --option teacher=RUN")
    try:
        weight = float(options.get("self_distil", 0.1))
    except ValueError:
        raise UnlabeledError(f"self_distil must be a number, got {options['self_distil']!r}") from None
    teacher = Run(path)
    digest = file_hash(teacher.path / ckpt.MODEL_FILE)
    if options.get("teacher_weights") not in (None, digest):
        raise UnlabeledError(f"the self-distillation teacher {teacher.path} changed since this run started")
    mine, theirs = spec.encoder.to_json(), teacher.config["encoder"]
    # the tokenizer first: another one also gives another context length, which the architecture
    # check below would name instead of the cause
    if spec.modality.get("tokenizer") != teacher.config["modality"].get("tokenizer"):
        # the penalty compares the two encoders' representations of the same token ids: under
        # another tokenizer those ids are other tokens (and one past the teacher's vocabulary
        # failed inside torch)
        raise UnlabeledError(
            f"the teacher {teacher.path} reads text with another tokenizer; self-distillation needs the student's: "
            f"continue from it with --init {teacher.path}"
        )
    if (mine["name"], mine["size"], mine["sample_shape"]) != (theirs["name"], theirs["size"], theirs["sample_shape"]):
        raise UnlabeledError(f"the teacher {teacher.path} holds another architecture; it must match the student's")
    try:
        objective.self_distil = self_distil.Teacher(teacher.encoder(), weight)
    except ValueError as e:
        raise UnlabeledError(str(e)) from None
    return {"self_distil": weight, "teacher": str(teacher.path.resolve()), "teacher_weights": digest}


def starting_run(spec: RunSpec) -> Run | None:
    """The run whose weights a new run starts from: the ``--init`` run of a pretraining spec
    (every weight that fits), or the source run of a classifier's (its encoder)."""
    path = spec.init.run if spec.init is not None and spec.init.run else spec.source_run
    return None if path is None else Run(path)


def note_forgotten(src: Run, col: Collection, positions: np.ndarray) -> None:
    """Warn where a run about to train on ``positions`` from ``src`` would learn again samples
    forgotten from ``src`` or a run it started from: a forget request removed them from that
    model, and training on them undoes it."""
    ids, seen, run = set(col.ids[positions].tolist()), set(), src
    while run is not None and str(run.path) not in seen:
        seen.add(str(run.path))
        if (run.path / FORGOTTEN_IDS).exists():
            back = _forgotten_here(run, col, positions, ids)
            if back:
                warn(
                    f"{back} of the samples this run trains on were forgotten from {run.path} by a forget "
                    "request; training on them learns them again: leave them out of the data"
                )
        init = (run.config.get("init") or {}).get("run")
        run = Run(Path(init)) if init and (Path(init) / CONFIG).exists() else None


def _forgotten_here(run: Run, col: Collection, positions: np.ndarray, ids: set[str]) -> int:
    """How many of ``col``'s samples at ``positions`` (``ids``) were forgotten from ``run``: by
    id on the collection the forget request read, by content on another (the same samples
    imported again under other ids were not seen as forgotten)."""
    forgotten = read_ids(run.path / FORGOTTEN_IDS)
    where = run.config.get("task" if run.kind == "classifier" else "data") or {}
    try:
        theirs = open_collection(where["path"])
    except (KeyError, UnlabeledError):  # moved or gone: their ids are all there is
        return len(ids.intersection(forgotten))
    if (theirs.modality, theirs.sample_shape) != (col.modality, col.sample_shape):
        return len(ids.intersection(forgotten))
    known = set(theirs.ids)
    return int(same_samples(theirs, theirs.positions([i for i in forgotten if i in known]), col, positions).sum())


def refuse_sharded_start(src: Run | None) -> None:
    """A run to start from must be one model: a sharded (SISA) run's shards are several."""
    if src is not None and "sisa" in src.config:
        raise UnlabeledError(
            f"{src.path} is a sharded (SISA) run, whose shards' encoders cannot start one model; "
            f"start from one shard ({src.path / SHARDS / '00'}), or pretrain without --shards"
        )


def open_start(run: Run | str | os.PathLike[str] | None) -> Run | None:
    """The run a new one starts from (None: from scratch), refused if sharded."""
    src = None if run is None else open_run(run)
    refuse_sharded_start(src)
    return src


def start_point(src: Run) -> InitSpec:
    """The starting point of a run that begins from ``src``'s weights, with their hash. A
    sharded (SISA) run is refused: its shards' encoders side by side trained a classifier that
    its own config described as one encoder, and that could not be loaded again."""
    refuse_sharded_start(src)
    path = src.path / ckpt.MODEL_FILE
    if not path.exists():
        raise UnlabeledError(f"{src.path} has no saved weights yet ({ckpt.MODEL_FILE})")
    if "eco" in src.config:  # ECO changes no weight: what it forgot lives in the guard alone
        info(
            f"note: {src.path} is an ECO result: its prompt guard is not part of its weights, so this "
            "run starts from the unchanged weights of the model it was made from, without the guard"
        )
    return InitSpec(run=str(src.path.resolve()), step=src.step, weights=file_hash(path))


@dataclass(frozen=True)
class Feed:
    """A run's own batches: the ``sampler`` that draws them (instead of the epoch order over
    the training positions), and the id files a new run records beside ``training-ids.txt``
    (name -> positions), such as a self-trained run's labelled samples, and ``warm_start``."""

    sampler: Sampler
    ids_files: dict[str, np.ndarray] = field(default_factory=dict)
    # called on a new run's objective once its starting weights are in (a head fitted first)
    warm_start: Callable[[Objective], None] | None = None


def mixture_sampler(col: Mixture, positions: np.ndarray, cfg: Any) -> MixSampler:
    """The order of a run on a mixture: each collection's pool at its share of each batch."""
    pools = col.pools(positions)
    m = col.mix
    for c, pool, *shares in zip(col.parts, pools, m.weights, m.last_weights or m.weights, strict=True):
        if not len(pool) and max(shares) > 0:
            raise UnlabeledError(f"--mix: {c.path} has no sample to train on (all in the excluded split?)")
    info(f"mixture: {col.describe(pools)}")
    return MixSampler(
        pools, m.weights, cfg.batch_size, cfg.seed, m.last, m.last_weights, dist.rank(), dist.world_size()
    )


def check_same_start(spec: RunSpec, start: Run | None, out: Path) -> None:
    """A run killed before its first checkpoint starts again from the weights it first started
    from: the run it names must hold them still (another run's there, trained or replaced since,
    would be trained on while config.json recorded the first, and lineage checks trust that)."""
    if start is None or spec.init is None or not spec.init.weights:
        return
    weights = start.path / ckpt.MODEL_FILE
    if not weights.exists() or file_hash(weights) != spec.init.weights:
        raise UnlabeledError(
            f"the run {start.path} that {out} started from changed since it started (it has no checkpoint "
            "yet to resume from): start it again with --overwrite"
        )


def _finished(out: Path) -> bool:
    """Whether the run in ``out`` reached its planned steps. An unfinished one is told by its
    weights' metadata, without loading the resume state the trainer loads next (the weights are
    renamed first, so they are never behind the state); else the state decides."""
    weights = out / ckpt.MODEL_FILE
    meta = ckpt.weights_metadata(weights) if weights.exists() else {}
    if "step" in meta and "total_steps" in meta and int(meta["step"]) < int(meta["total_steps"]):
        return False
    return Run(out).finished


def check_same_processes(spec: RunSpec, out: Path) -> None:
    """A run resumes with the number of processes it started with: each step's batch is
    ``batch_size`` per process and the sampler deals it by rank, so another count trains the
    rest of the run on other batches in another order, and it no longer ends as it would have."""
    started = (spec.provenance.get("environment") or {}).get("world_size")
    if started is not None and int(started) != dist.world_size():
        how = f"torchrun --nproc_per_node {started}" if int(started) > 1 else "one process (no torchrun)"
        raise UnlabeledError(
            f"{out} was trained by {started} process(es), this is {dist.world_size()}: resume it with {how}, "
            "or start it again with --overwrite"
        )


def check_same_index(spec: RunSpec, col: Collection, out: Path) -> None:
    """A run resumes on its collection's samples (the fingerprint, checked by each command)
    with the ids, labels and splits it started with: a collection imported again with other
    labels would train the rest of the run on them, and a label draw or split would no longer
    be the one its ids name. Runs made before the index was hashed are not checked."""
    recorded = spec.data.index
    # a distil run made before soft targets were hashed by the collection beneath: the old hash
    if recorded is not None and recorded != index_hash(col) and recorded != index_hash(col, soft_as_ints=True):
        raise UnlabeledError(
            f"{col.path}'s ids, labels or splits changed since {out} was trained on it; a resumed run would "
            "train the rest of its steps on them: start it again with --overwrite"
        )


def train(
    spec: RunSpec,
    col: Collection,
    positions: np.ndarray,
    out: Path,
    device: torch.device,
    *,
    resume: bool = False,
    replace_old: bool = False,
    feed: Feed | None = None,
) -> Run:
    """Train the run ``spec`` describes on ``col``'s samples at ``positions`` into ``out``:
    a new run (``replace_old``: an old run there goes once this one is known to start), or
    with ``resume`` the run in ``out`` from its last checkpoint. A new run starts from the
    weights of the run its spec names (:func:`starting_run`).
    ``feed`` replaces the epoch order (self-training's labelled + unlabelled batches)."""
    if resume:
        check_same_index(spec, col, out)
        if not _finished(out):  # a finished run is only said to be finished
            check_same_processes(spec, out)
    # a resumed run's checkpoint holds its weights; one killed before its first checkpoint
    # starts again from step 0, and from the weights a new run starts from
    restart = resume and not (out / ckpt.STATE_FILE).exists()
    start = None if resume and not restart else starting_run(spec)
    if restart:
        check_same_start(spec, start, out)
    if start is not None:
        note_forgotten(start, col, positions)
    objective, spec = build(spec, start, encoder_only=spec.kind == "classifier")
    if (not resume or restart) and feed is not None and feed.warm_start is not None:
        feed.warm_start(objective)
    if restart and dist.rank() == 0:  # the log of steps no checkpoint kept: they are trained again
        (out / "metrics.jsonl").unlink(missing_ok=True)
    if not resume:
        spec = spec.replace(data=replace(spec.data, samples=len(positions), index=index_hash(col)))
        if len(positions) != len(col.indices(exclude=spec.data.exclude_split)):
            spec = spec.replace(data=replace(spec.data, ids=ids_hash(col.ids[positions])))
    # built before anything is written, so that a run it refuses (a batch larger than the
    # training set, say) leaves no folder behind to --overwrite
    sampler = None if feed is None else feed.sampler
    if sampler is None and isinstance(col, Mixture):
        sampler = mixture_sampler(col, positions, spec.train)
    order = positions if feed is not None or spec.kind == "classifier" else weighted_positions(col, positions)
    trainer = Trainer(objective, col, order, spec.train, out, device, sampler=sampler)
    old = set_aside(out) if replace_old else None  # removed once the new run has a checkpoint
    dist.barrier()  # every rank has checked `out` before rank 0 writes into it
    if not resume and dist.rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
        if spec.data.ids is not None or spec.kind == "classifier":  # a subset: say which samples
            write_ids(out / TRAINING_IDS, col.ids[positions])
        for name, where in (feed.ids_files if feed else {}).items():
            write_ids(out / name, col.ids[where])
        ckpt.atomic_write_json(out / CONFIG, spec.to_config())
    e = spec.encoder
    params = sum(p.numel() for p in objective.encoder.parameters()) / 1e6
    info(
        f"{'train a classifier:' if spec.kind == 'classifier' else 'pretrain'} {objective.name} on {col.name}: "
        f"{len(positions)} samples, {e.name}-{e.size} encoder ({params:.2f}M parameters), "
        f"batch {spec.train.batch_size}{' per process' if dist.world_size() > 1 else ''}, device {device}"
    )
    try:
        summary = trainer.fit(resume=resume)
    except BaseException as e:
        if not resume and isinstance(e, UnlabeledError):  # refused before its first checkpoint: nothing left
            written = [CONFIG, TRAINING_IDS, "metrics.jsonl", *(feed.ids_files if feed else {})]
            _remove_unstarted(out, written)
        put_back(old, out)  # the replaced run, where the new one never reached a checkpoint
        raise
    put_back(old, out)
    del trainer  # its DDP wrapper must go before the process group does
    ranks = (
        f", weights {'identical' if summary['ranks_identical'] else 'DIFFERENT'} on {summary['ranks']} processes"
        if "ranks" in summary
        else ""
    )
    steps = f"{summary['steps']} step{'s' if summary['steps'] != 1 else ''}"
    info(f"done: {steps} in {summary['seconds']:.0f} s{ranks} -> {out}")
    return Run(out)


def _remove_unstarted(out: Path, written: list[str]) -> None:
    """Remove the files a new run wrote before it failed, and its folder if that empties it
    (rank 0), unless it saved a checkpoint: then it is a run to resume."""
    if dist.rank() != 0 or (out / ckpt.STATE_FILE).exists():
        return
    for name in written:
        (out / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: other files were there before it
        out.rmdir()


def _remove_stale_shards(root: Path, shards: int) -> None:
    """Remove shard folders beyond the first ``shards`` (an earlier, interrupted run with more
    shards left them): they are not this run's, and would join its ensemble (rank 0)."""
    dist.barrier()
    if dist.rank() == 0:
        keep = {f"{s:02d}" for s in range(shards)}
        for p in sorted(root.iterdir()):
            if p.name not in keep and not p.name.startswith("."):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    dist.barrier()


def saved_budget(train: TrainConfig, kind: str) -> Any:
    """A saved run's ``epochs`` or ``minutes`` for :func:`say_resume_ignores`; where it was
    trained by the other, that one, in words ("a 0.2-minute budget" rather than None)."""
    value = getattr(train, kind)
    if value is not None:
        return value
    if kind == "epochs" and train.minutes is not None:
        return f"a {train.minutes:g}-minute budget"
    return f"{train.epochs:g} epochs" if kind == "minutes" and train.epochs is not None else None


def say_resume_ignores(pairs: list[tuple[str, Any, Any, Any]]) -> None:
    """A resumed run continues as it was saved: of ``(flag, asked, saved, default)``, the
    settings asked for now (not left at their ``default``) that differ from the saved ones are
    named, not silently dropped."""
    differ = [f"{flag} {asked} (saved: {saved})" for flag, asked, saved, unset in pairs if asked not in (unset, saved)]
    if differ:
        info("--resume continues the run as it was saved; ignored: " + ", ".join(differ))


def saved_pairs(recipe: Any, saved: Any, keys: tuple[str, ...]) -> list[tuple[str, Any, Any, Any]]:
    """:func:`say_resume_ignores`'s pairs for settings a recipe and a saved object (the run's
    ``TrainConfig``, its objective's options) name alike: ``--key`` (underscores as hyphens),
    asked, saved, and the recipe class's default as the value left unset."""
    get = saved.get if isinstance(saved, dict) else lambda k: getattr(saved, k)
    return [(f"--{k.replace('_', '-')}", getattr(recipe, k), get(k), getattr(type(recipe), k)) for k in keys]


def option_pairs(flag: str, asked: dict[str, Any] | None, saved: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """:func:`say_resume_ignores`'s pairs for a ``KEY=VALUE`` option (``--option``, ``--augment``):
    each key asked for now against its saved value (lists and tuples alike)."""

    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, list | tuple) else v

    return [(f"{flag} {k}", plain(v), plain(saved.get(k)), None) for k, v in sorted((asked or {}).items())]


def train_positions(
    col: Collection, positions: Any, what: str = "positions", exclude: str | None = "test"
) -> np.ndarray:
    """``positions`` given through the API, checked and sorted: whole sample positions within
    ``col`` (a negative one would wrap round to the end, a fraction be cut, a boolean mask read
    as positions 0 and 1), none in split ``exclude`` (the test split), which never trains a model."""
    a = np.asarray(positions)
    if a.ndim != 1 or (a.size and not whole_numbers(a)):
        raise UnlabeledError(f"{what} must be a list of whole sample positions, got {a.dtype} of shape {a.shape}")
    a = a.astype(np.int64)
    bad = a[(a < 0) | (a >= len(col))]
    if len(bad):
        raise UnlabeledError(f"{what} must be within 0..{len(col) - 1} ({col.path}); got {bad[:3].tolist()}")
    held = 0 if exclude is None or col.splits is None else int((col.splits[a] == exclude).sum())
    if held:
        raise UnlabeledError(
            f"{col.path}: {held} of the {what} are in the {exclude} split, which may not train a model"
        )
    return np.sort(a)


def check_shards(shards: Any) -> None:
    """A shard count is a whole number, 1 or more (checked before anything is read or written)."""
    check_count(shards, "--shards", 1)


def _check_same_split(col: Collection, out: Path, parts: list[np.ndarray]) -> None:
    """A resumed SISA run's shards are those it started with: the options given now (a seed, a
    label fraction) split the samples again, and a shard already trained on another part
    would leave shards that overlap and a sample the model learnt outside its training ids."""
    for s, part in enumerate(parts):
        config = out / SHARDS / f"{s:02d}" / "config.json"
        recorded = (read_config(config).get("data") or {}).get("ids") if config.exists() else None
        if recorded is not None and recorded != ids_hash(col.ids[part]):
            raise UnlabeledError(
                f"{out} was split into shards with other options (shard {s:02d} trained on other samples than "
                "these options give it: another --seed, --fraction or --shots?); resume it with the options it "
                "started with, or start again with --overwrite"
            )


def train_shards(
    col: Collection,
    positions: np.ndarray,
    out: Path,
    shards: int,
    seed: int,
    train_one: Callable[[Path, np.ndarray, bool], Run],
    resume: bool = False,
    top: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Run:
    """SISA: ``positions`` split into ``shards`` disjoint random parts, one run per part in
    ``OUT/shards/NN`` made by ``train_one(folder, part, resume)`` (with ``resume``, a finished
    shard is kept and an interrupted one resumed), then the top-level ``config.json``: the
    first shard's, with the whole training set, the shard count and the seconds taken
    (``top(first shard's config)`` adds to it or overrides a section). The
    top-level config is written last, so an interrupted run has only shard folders."""
    t0 = time.perf_counter()
    if resume and (out / SHARDS).is_dir():  # its trained shards belong to the split it started with
        started = sorted(p.name for p in (out / SHARDS).iterdir() if p.is_dir() and not p.name.startswith("."))
        if any(int(n) >= shards for n in started if n.isdigit()):
            raise UnlabeledError(f"{out} was started with more than {shards} shards; resume it with its own --shards")
    parts = shard_split(positions, shards, seed)
    if resume:
        _check_same_split(col, out, parts)
    for s, part in enumerate(parts):
        shard = out / SHARDS / f"{s:02d}"
        if resume and (shard / "config.json").exists() and Run(shard).finished:
            continue
        info(f"shard {s + 1}/{shards}: {len(part)} samples")
        train_one(shard, part, resume and (shard / ckpt.STATE_FILE).exists())
    _remove_stale_shards(out / SHARDS, shards)
    first = Run(out / SHARDS / "00")
    config = {**first.config, "sisa": {"shards": shards}, "seconds": round(time.perf_counter() - t0, 2)}
    if "task" in config:
        config["task"] = {**config["task"], "samples": len(positions)}
    # the whole run's training set, as a single run on it would record it
    data = {k: v for k, v in config["data"].items() if k != "ids"} | {"samples": len(positions)}
    if len(positions) != len(col.indices(exclude=data.get("exclude_split"))):
        data["ids"] = ids_hash(col.ids[positions])
    config["data"] = data
    config |= top(first.config) if top else {}
    if dist.rank() == 0:  # every rank wrote them, each with its own clock's seconds
        write_ids(out / TRAINING_IDS, col.ids[positions])
        ckpt.atomic_write_json(out / "config.json", config)
    dist.barrier()
    return Run(out)


def claim_sharded(out: Path, resume: bool, overwrite: bool) -> Path | None:
    """:func:`claim_run_dir` for a sharded (SISA) run: with ``resume``, ``out`` must hold one
    (finished, or interrupted: shard folders alone); with ``overwrite`` the old run is set
    aside (:func:`set_aside`) until a shard has a checkpoint, and the folder it went to is
    returned for :func:`put_back`. ``--resume --shards`` on a run trained without shards
    trained shards inside it and replaced its config; ``--overwrite`` removed the old run
    before the new one was known to start."""
    if resume:
        config = out / "config.json"
        if config.exists() and "sisa" not in json.loads(config.read_text()):
            raise UnlabeledError(f"{out} holds a run trained without --shards; resume it without --shards")
        if not config.exists() and not (out / SHARDS).is_dir():
            raise UnlabeledError(f"nothing to resume: {out} holds no run")
        claim_run_dir(out, config.exists(), False)
        return None
    return set_aside(out) if claim_run_dir(out, False, overwrite, remove=False) else None
