"""The Run directory: what ``pretrain`` leaves behind, reopened by path alone.

config.json          everything needed to rebuild and reproduce the run
model.safetensors    the objective's weights (encoder.* is the encoder)
state.pt             optimiser, step and weights, for --resume
metrics.jsonl        one line per logged step
embeddings.parquet   id, vector (from ``unlabeled embed``)
bench.json, report.html

run = open_run("runs/a")
X = run.encode(collection)                    # (n, dim) float32 features
path = embed(run, collection)                 # runs/a/embeddings.parquet
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from unlabeled._console import UnlabeledError, not_utf8, progress, samples_of
from unlabeled._settings import check_count, folder
from unlabeled.data.collection import Collection, holding_collection, open_collection
from unlabeled.modalities import fit_modality, modality_from_state
from unlabeled.models import ShardEncoders, build_encoder, saved_options
from unlabeled.models.fold import fold_batch_norms
from unlabeled.objectives.supervised import Classifier, ShardEnsemble
from unlabeled.runtime import autocast, use_bf16
from unlabeled.runtime import resolve_device as resolve_device  # re-exported: older import path
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.trainer import TrainConfig

EMBEDDINGS_FILE = "embeddings.parquet"
TRAINING_IDS = "training-ids.txt"  # the sample ids a run trained on (finetune, forget, sharded or subset pretrain)
FORGOTTEN_IDS = "forgotten-ids.txt"  # the ids a forget request removed (its output run)
SHARDS = "shards"  # SISA: OUT/shards/NN, one run per shard
ANCESTORS = "ancestors"  # OUT/ancestors/NN-name: the ancestors an exact forget request retrained
AUDIT_FILE = "forget-audit.sqlite"  # the append-only log of the forget requests made of a run


def refuse_losing_audit(out: Path) -> None:
    """Refuse to replace the run in ``out`` where it (or a run inside it) holds the audit log of
    forget requests made of it: a log that ``--overwrite`` would delete is no audit log."""
    if next(Path(out).rglob(AUDIT_FILE), None) is not None:  # its own, or a nested run's
        raise UnlabeledError(
            f"{out} holds the log of the forget requests made of it ({AUDIT_FILE}), which --overwrite "
            "would delete; write the new run elsewhere, or move the log away first"
        )


# samples per forward pass when embedding: on the 2-core CPU a random-init cnn-tiny embedded
# Fashion-MNIST's 70k images in 24.6 s at 256 against 35.7 s at 1024, with 170 MiB less peak
EMBED_BATCH = 256


def write_ids(path: str | os.PathLike[str], ids: Iterable[object]) -> None:
    """Sample ids, one per line, written atomically (``training-ids.txt``, ``forgotten-ids.txt``);
    an id with a line break in it (or a leading quote) as a JSON string, so that it reads back
    whole (a CSV's quoted id over two lines came back as two ids)."""
    ckpt.atomic_write_text(path, "".join(f"{_id_line(str(i))}\n" for i in ids))


def _id_line(i: str) -> str:
    # spaces at either end too: a file of ids given by hand is read with them stripped
    quoted = "\n" in i or i.startswith('"') or i != i.strip()
    return json.dumps(i, ensure_ascii=False) if quoted else i


def read_ids(path: str | os.PathLike[str]) -> list[str]:
    """The ids in a file written by :func:`write_ids` (lines split at "\n" alone: an id may hold
    any other separator ``str.splitlines`` splits at, such as U+2028)."""
    try:
        lines = Path(path).read_bytes().decode("utf-8").split("\n")  # no newline translation: "\r" stays
    except UnicodeDecodeError as e:  # a damaged run's file: one line, as for its other files
        raise UnlabeledError(f"{path} is {not_utf8(e)}") from None
    return [read_id(line) for line in lines if line]


def read_id(line: str) -> str:
    if line.startswith('"'):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:  # an id that begins with a quote, written as it was
            return line
        return value if isinstance(value, str) else line
    return line


def shard_split(positions: np.ndarray, shards: int, seed: int) -> list[np.ndarray]:
    """SISA's disjoint shards of ``positions``, each sorted: every sample goes to the shard a
    seeded hash of its position picks, so the same samples less some are split the same way
    less those (a retrained reference of a SISA request then has SISA's own shards, and its
    unaffected shards are the original's, bit for bit). Where that leaves a shard with fewer
    than two samples (a small set), a seeded random partition into near-equal parts."""
    positions = np.asarray(positions, dtype=np.int64)
    if shards < 1 or len(positions) < 2 * shards:
        raise UnlabeledError(f"{len(positions)} samples are too few for {shards} shards")
    with np.errstate(over="ignore"):  # splitmix64: wrapping arithmetic is the point
        h = positions.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    which = (h % np.uint64(shards)).astype(np.int64)
    parts = [np.sort(positions[which == s]) for s in range(shards)]
    if min(len(p) for p in parts) >= 2:
        return parts
    return [np.sort(p) for p in np.array_split(np.random.default_rng(seed).permutation(positions), shards)]


class MissingEntry(UnlabeledError, KeyError):
    """A key a run's config.json lacks: an UnlabeledError naming the file (the CLI prints one
    line), and a KeyError for code that catches one."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError's own would quote the message


class RunConfig(dict):
    """A run's ``config.json`` as read: a plain dict, except that a missing key is a
    :class:`MissingEntry` naming the file (a hand-edited config), not a bare KeyError."""

    def __init__(self, items: Any = (), path: Path | None = None) -> None:
        super().__init__(items)
        self.path = path

    def __missing__(self, key: str) -> Any:
        where = self.path or "a run's config.json"
        raise MissingEntry(f"{where} has no {key!r} entry (edited by hand?); restore it or make the run again")


# the types of the config.json entries every command reads (checked where present)
_SECTION_TYPES = {"data": dict, "modality": dict, "encoder": dict, "method": dict, "train": dict}
_TYPE_NAMES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "None": (type(None),)}


def _wrong_type(value: object, annotation: str) -> bool:
    """Whether ``value`` (from JSON) is not of the dataclass field type ``annotation`` (a
    string such as ``float | None``); types other than int/float/bool/str/None are not checked."""
    names = [n.strip() for n in annotation.split("|")]
    if not all(n in _TYPE_NAMES for n in names):
        return False
    allowed = tuple(t for n in names for t in _TYPE_NAMES[n])
    return not isinstance(value, allowed) or (isinstance(value, bool) and "bool" not in names)


def check_config(config: dict[str, Any], path: Path) -> None:
    """Check the types of the ``config.json`` entries that rebuild a run (its sections, the
    encoder's name, size and input shape, the method's name, the training loop's settings);
    a wrong one is an UnlabeledError naming the file and the entry."""

    def bad(where: str, value: object, want: str) -> UnlabeledError:
        return UnlabeledError(f"{path}: {where} should be {want}, not {json.dumps(value)} (edited by hand?)")

    for key, kind in _SECTION_TYPES.items():
        if key in config and not isinstance(config[key], kind):
            raise bad(key, config[key], "an object")
    for section, key in (("encoder", "name"), ("encoder", "size"), ("method", "name"), ("modality", "name")):
        value = config.get(section, {}).get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"{section}.{key}", value, "a string")
    shape = config.get("encoder", {}).get("sample_shape")
    if shape is not None and not (
        isinstance(shape, list)
        and shape
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise bad("encoder.sample_shape", shape, "a list of positive integers")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in config.get("train", {}).items():
        if key not in fields:
            raise UnlabeledError(f"{path}: train.{key} is not a setting of the training loop (edited by hand?)")
        if _wrong_type(value, str(fields[key].type)):
            raise bad(f"train.{key}", value, f"of type {fields[key].type}")


def read_config(path: Path) -> RunConfig:
    """A run's ``config.json``, checked (:func:`check_config`): invalid JSON, or an entry of the
    wrong type, is an UnlabeledError naming the file."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"), object_hook=lambda d: RunConfig(d, path))
    except json.JSONDecodeError as e:
        raise UnlabeledError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); restore it or make the run again"
        ) from None
    except UnicodeDecodeError as e:
        raise UnlabeledError(f"{path} is {not_utf8(e)}") from None
    if not isinstance(config, dict):
        raise UnlabeledError(f"{path} holds {type(config).__name__}, not an object of settings (edited by hand?)")
    check_config(config, path)
    return config


class OwnInputs(nn.Module):
    """A SISA shard's model fed its inputs as its own modality normalises them. A sharded run
    is given inputs normalised with its first shard's statistics (its ``config.json`` holds
    them), but each shard trained from scratch fitted its own, on its own samples (so that
    forgetting retrains the shards that held a sample and no other): the members after the
    first were fed inputs shifted and scaled off what they trained on. The statistics are
    undone and the shard's applied, exactly (both are per-channel affine maps)."""

    def __init__(self, member: nn.Module, given: Any, own: Any) -> None:
        super().__init__()
        self.member, self.given, self.own = member, given, own
        self.dim = getattr(member, "dim", None)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        shape = self.given.stat_shape(x)
        mean = torch.tensor(self.given.mean, device=x.device, dtype=x.dtype).view(shape)
        std = torch.tensor(self.given.std, device=x.device, dtype=x.dtype).view(shape)
        return self.own.normalize(x * std + mean)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.member.embed(self._inputs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member(self._inputs(x))


def own_inputs(member: nn.Module, given: Any, shard: Run) -> nn.Module:
    """``member`` (shard ``shard``'s model) as is where it normalises as ``given`` does (a run
    fine-tuned from one pretrained encoder: every shard reads with its modality), else wrapped
    to normalise its inputs its own way (:class:`OwnInputs`). Text cannot be re-read this way
    (another tokenizer's ids): such a run is refused."""
    own = shard.modality()

    def reading(m: Any) -> dict[str, Any]:  # what makes a batch of a sample, before normalising
        return {k: v for k, v in m.state().items() if k not in ("mean", "std", "augment")}

    if reading(own) != reading(given):
        raise UnlabeledError(
            f"{shard.path} reads its inputs otherwise than its run's first shard (another tokenizer?); "
            "its ensemble cannot feed both"
        )
    if (own.mean, own.std) == (given.mean, given.std):
        return member
    return OwnInputs(member, given, own)


class Run:
    """A pretraining run on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        cfg = self.path / "config.json"
        if not cfg.is_file():
            raise UnlabeledError(f"{self.path} is not a run (no config.json); create one with `unlabeled pretrain`")
        self.config: dict[str, Any] = read_config(cfg)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, method={self.method!r}, step={self.step})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return str(self.config["method"]["name"])

    @property
    def step(self) -> int:
        """The training step of the saved weights (0 when none are saved yet)."""
        path = self.path / ckpt.MODEL_FILE
        if not path.exists():
            return 0
        try:
            return int(ckpt.weights_metadata(path).get("step", 0))
        except ValueError:
            return 0

    @property
    def finished(self) -> bool:
        """Whether training reached its planned steps (an interrupted run resumes with
        ``pretrain(..., resume=True)``); a sharded run when every shard did."""
        if "sisa" in self.config:
            return len(self.shards()) == int(self.config["sisa"]["shards"]) and all(s.finished for s in self.shards())
        state = self.path / ckpt.STATE_FILE
        if not state.exists():
            return False
        s = ckpt.load_state(state)
        return s["step"] >= s.get("total_steps", s["step"] + 1)

    def modality(self):
        return modality_from_state(self.config["modality"])

    def shards(self) -> list[Run]:
        """The shard runs of a SISA run (``--shards``), in order; empty for any other run."""
        root = self.path / SHARDS
        if "sisa" not in self.config or not root.is_dir():
            return []
        # the configured shards by name: a folder beyond them is not this run's
        names = (root / f"{s:02d}" for s in range(int(self.config["sisa"]["shards"])))
        return [Run(p) for p in names if (p / "config.json").exists()]

    def encoder(self, trained: bool = True) -> nn.Module:
        """The run's encoder in eval mode: with its trained weights, or freshly initialised
        with the run's seed (the random-init baseline). A sharded (SISA) run's encoder
        concatenates its shard encoders' embeddings."""
        if "sisa" in self.config:
            given = self.modality()
            return ShardEncoders([own_inputs(s.encoder(trained), given, s) for s in self.shards()]).eval()
        enc_cfg = self.config["encoder"]
        takes = tuple(self.modality().input_shape)
        if takes != tuple(enc_cfg["sample_shape"]):  # what the modality makes, the encoder must take
            raise UnlabeledError(
                f"{self.path / 'config.json'}: the modality makes inputs of shape {list(takes)}, but the encoder "
                f"was built for {enc_cfg['sample_shape']} (edited by hand?)"
            )
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            torch.manual_seed(self.config["train"]["seed"])
            enc = build_encoder(
                enc_cfg["name"], enc_cfg["size"], tuple(enc_cfg["sample_shape"]), **saved_options(enc_cfg)
            )
        if trained:
            load_checked(enc, self.weights(enc_cfg.get("weights", "encoder")), self.path / ckpt.MODEL_FILE)
            if "eco" in self.config:  # an ECO forget request: the same weights behind a prompt guard
                enc = eco_guard(enc, self.weights("eco"), float(self.config["eco"]["sigma"]), self.path)
        return enc.eval()

    def digest(self, trained: bool = True) -> str:
        """A hash of what the run's encoder is made of: its architecture, seed and fitted
        modality and, when ``trained``, its saved weights (the bytes of model.safetensors);
        a sharded (SISA) run's shards' too. Two runs with the same digest encode alike, so
        the bench keys its score cache by it rather than by the run's path and step."""
        made_of = [self.config.get("encoder"), self.config.get("modality"), self.config.get("train", {}).get("seed")]
        if trained:
            made_of.append(ckpt.file_digest(self.path / ckpt.MODEL_FILE))
        if self.precision != "auto":  # it encodes in that precision (older caches keep their keys)
            made_of.append(self.precision)
        made_of += [s.digest(trained) for s in self.shards()]
        return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()

    def weights(self, module: str | None = None) -> dict[str, torch.Tensor]:
        """The saved weights (the objective's whole state), or those of submodule ``module``
        (``encoder``, ``head``, ...) without its prefix."""
        path = self.path / ckpt.MODEL_FILE
        self.refuse_unfinished_forget()
        if not path.exists():
            raise UnlabeledError(f"{self.path} has no saved weights yet ({ckpt.MODEL_FILE})")
        weights = ckpt.load_weights(path)
        return weights if module is None else encoder_weights(weights, module)

    def refuse_unfinished_forget(self) -> None:
        """Refuse a run that holds a forget request that did not finish: a half-unlearned model,
        which would pass for one that forgot."""
        unfinished = "forget" in self.config and not self.config["forget"].get("finished")
        if unfinished and self.path.parent.name != SHARDS:  # a shard's record is its run's (older runs)
            raise UnlabeledError(
                f"{self.path} holds a forget request that did not finish; "
                "run the same `unlabeled forget` command again to finish it"
            )

    @property
    def kind(self) -> str:
        """``encoder`` for a pretraining run, ``classifier`` for ``finetune``/``forget`` output."""
        return str(self.config.get("kind", "encoder"))

    def classifier(self) -> nn.Module:
        """The fine-tuned classifier (encoder + linear head) in eval mode."""
        if "sisa" in self.config and self.kind == "classifier":
            given = self.modality()
            return ShardEnsemble([own_inputs(s.classifier(), given, s) for s in self.shards()]).eval()
        if self.kind != "classifier":
            raise UnlabeledError(
                f"{self.path} is a pretraining run, not a classifier; make one with `unlabeled finetune`"
            )
        clf = Classifier(self.encoder(), int(self.config["method"]["classes"]))
        load_checked(clf.head, self.weights("head"), self.path / ckpt.MODEL_FILE)
        return clf.eval()

    def training_ids(self) -> list[str]:
        """The sample ids the run was trained on: recorded by ``finetune`` and ``forget``; for
        a pretraining run, its collection's samples outside the excluded (test) split."""
        path = self.path / TRAINING_IDS
        if path.exists():
            return read_ids(path)
        data = self.config.get("data")
        if self.kind == "encoder" and data:
            col = open_collection(data["path"])
            if col.fingerprint() != data["fingerprint"]:
                raise UnlabeledError(f"{col.path} changed since {self.path} was trained on it")
            return [str(i) for i in col.ids[col.indices(exclude=data.get("exclude_split"))]]
        raise UnlabeledError(f"{self.path} records no training ids (not made by pretrain, finetune or forget)")

    def labelled_ids(self) -> list[str]:
        """The ids whose labels the run trained on: ``labelled-ids.txt`` for a self-trained
        classifier (the rest of its pool was pseudo-labelled); for a distilled student none
        without ``--label-weight`` (it learnt its teacher's soft labels) and with it the
        teacher's labelled samples it trained on; every training id otherwise (``finetune``)."""
        path = self.path / "labelled-ids.txt"
        if path.exists():
            return read_ids(path)
        teacher = self.config.get("teacher") if self.kind == "classifier" else None
        if teacher and not teacher.get("label_weight"):
            return []
        if teacher and (Path(teacher["run"]) / "config.json").exists():
            mine = set(self.training_ids())
            return [i for i in Run(teacher["run"]).labelled_ids() if i in mine]
        return self.training_ids()  # a student whose teacher is gone: every id, to be safe

    def metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def encode(
        self,
        collection: Collection | str,
        positions: np.ndarray | None = None,
        *,
        trained: bool = True,
        batch_size: int = EMBED_BATCH,
        device: str | torch.device = "auto",
        precision: str | None = None,
        fit_on: np.ndarray | None = None,
    ) -> np.ndarray:
        """Features (n, dim) of the samples at ``positions`` (all when None), computed in
        ``precision`` (default: the one the run trained in, :attr:`precision`). Samples of
        another shape than the run's (a suite's tasks) are adapted first (``Modality.adapt``:
        resized, resampled, or one channel at a time with the channels' features side by side),
        their statistics fitted on ``fit_on`` (a task's train split; default ``positions``)."""
        col = open_collection(collection)
        mod = self.modality()
        samples = col
        if col.sample_shape != mod.sample_shape or col.modality != mod.name:
            samples = AdaptedSamples(col, mod, fit_modality(col, positions if fit_on is None else fit_on))
        precision = self.precision if precision is None else precision
        return encode(self.encoder(trained), mod, samples, positions, batch_size, device, precision=precision)

    @property
    def precision(self) -> str:
        """The precision the run trained in (``auto``, ``fp32`` or ``bf16``), which its
        features are computed in too: a run trained in fp32 embeds alike on every CPU."""
        return str(self.config.get("train", {}).get("precision") or "auto")


def trained_samples(run: Run, labelled: bool = False) -> list[tuple[Collection, np.ndarray]]:
    """The collections ``run`` trained on, each checked unchanged since, with the positions
    there of the samples it trained on (a ``--mix`` run: every part's samples outside the
    excluded split); with ``labelled``, only those whose labels it trained on
    (:meth:`Run.labelled_ids`)."""
    where = (run.config.get("task") if run.kind == "classifier" else run.config.get("data")) or {}
    if "mix" in where:
        parts = [(p["path"], p["fingerprint"]) for p in where["mix"]["parts"]]
    elif where.get("path"):
        parts = [(where["path"], where.get("fingerprint"))]
    else:
        raise UnlabeledError(f"{run.path} records no collection it was trained on")
    out = []
    for path, fingerprint in parts:
        col = open_collection(path)
        if col.fingerprint() != fingerprint:
            raise UnlabeledError(f"{col.path} changed since {run.path} was trained on it")
        if "mix" in where:
            out.append((col, col.indices(exclude=where.get("exclude_split"))))
        else:
            out.append((col, col.positions(run.labelled_ids() if labelled else run.training_ids())))
    return out


def same_samples(theirs: Collection, their_positions: np.ndarray, col: Collection, positions: np.ndarray) -> np.ndarray:
    """Which of ``col``'s samples at ``positions`` are among ``theirs``'s at ``their_positions``:
    by position where the two hold the same samples in the same order (one fingerprint, ids
    aside), by content (:meth:`Collection.content_digests`) where their samples are alike, else none."""
    if theirs.fingerprint() == col.fingerprint():
        return np.isin(positions, their_positions)
    if theirs.modality != col.modality or theirs.is_text != col.is_text or theirs.sample_shape != col.sample_shape:
        return np.zeros(len(positions), dtype=bool)
    seen = set(theirs.content_digests(their_positions))
    return np.fromiter((d in seen for d in col.content_digests(positions)), bool, len(positions))


def count_trained(run: Run, col: Collection, *position_sets: np.ndarray, labelled: bool = False) -> list[int]:
    """For each of ``position_sets`` (positions in ``col``), how many of its samples ``run``
    trained on: by position where it trained on ``col`` or a copy of it (the same fingerprint:
    the same samples in the same order, relabelled or under other ids), else by content
    (:meth:`Collection.content_digests`), so that the same samples in another collection
    still count."""
    hit = [np.zeros(len(p), dtype=bool) for p in position_sets]  # a sample in two parts of a mix counts once
    mine: list[np.ndarray] | None = None  # col's digests, made once and only if needed
    for other, pos in trained_samples(run, labelled):
        if other.fingerprint() == col.fingerprint():  # the same samples in the same order, whatever their ids
            for h, p in zip(hit, position_sets, strict=True):
                h |= np.isin(p, pos)
        elif other.modality == col.modality and other.is_text == col.is_text and other.sample_shape == col.sample_shape:
            mine = mine if mine is not None else [col.content_digests(p) for p in position_sets]
            seen = set(other.content_digests(pos))
            for h, digests in zip(hit, mine, strict=True):
                h |= np.fromiter((d in seen for d in digests), bool, len(digests))
    return [int(h.sum()) for h in hit]


def check_same_samples(trained_on: dict[str, Any], col: Collection, who: str, why: str = "") -> None:
    """Refuse ``col`` where its samples are not of the modality and shape a run was trained on
    (``trained_on``, its config's modality), in one line: ``who`` names the run and how it
    reads ("the teacher runs/t reads"), ``why`` says more after the two kinds of samples."""
    if trained_on["name"] != col.modality or tuple(trained_on["sample_shape"]) != col.sample_shape:
        raise UnlabeledError(
            f"{who} {samples_of(trained_on['name'], trained_on['sample_shape'])}; "
            f"{col.path} holds {samples_of(col.modality, col.sample_shape)}{why}"
        )


def load_checked(module: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``weights`` (read from ``path``) into ``module``; weights that do not fit it (missing,
    unexpected, another shape, integers for floats: a file from another run, or a config.json
    edited by hand) are an UnlabeledError naming the file and the first misfit."""
    own = module.state_dict()
    problems = [f"no weight {k}" for k in sorted(own.keys() - weights.keys())]
    problems += [f"unexpected weight {k}" for k in sorted(weights.keys() - own.keys())]
    for k in sorted(own.keys() & weights.keys()):
        have, want = weights[k], own[k]
        if have.shape != want.shape:
            problems.append(f"{k} has shape {tuple(have.shape)}, the model's is {tuple(want.shape)}")
        elif want.is_floating_point() and not have.is_floating_point():
            problems.append(f"{k} holds {str(have.dtype).removeprefix('torch.')}, not floating-point numbers")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnlabeledError(f"{path} does not fit the model config.json describes: {problems[0]}{more}")
    module.load_state_dict(weights)


def eco_guard(enc: nn.Module, weights: dict[str, torch.Tensor], sigma: float, path: Path) -> nn.Module:
    """``enc`` behind the ECO prompt guard saved in the run at ``path``, checked: the guard's
    classifier reads the model's own token ids."""
    from unlabeled.models.eco import CorruptedPrompts

    vocab = getattr(enc, "vocab", 0)
    if "weight" not in weights:  # the weights file holds no guard: replaced by another run's, say
        raise UnlabeledError(f"{path} is an ECO result whose {ckpt.MODEL_FILE} holds no ECO guard")
    if len(weights["weight"]) != vocab:
        raise UnlabeledError(
            f"the ECO guard in {path} was built for a vocabulary of {len(weights['weight'])} tokens; "
            f"the model reads {vocab}"
        )
    return CorruptedPrompts(enc, weights, sigma)


def encoder_weights(weights: dict[str, torch.Tensor], module: str = "encoder") -> dict[str, torch.Tensor]:
    """The weights of submodule ``module`` (the pretrained encoder) from an objective's state."""
    prefix = module + "."
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def open_run(path: str | os.PathLike[str] | Run) -> Run:
    """Open a run folder written by ``unlabeled pretrain`` (or pass one through). A run another
    process is still writing is refused: its weights change under the reader."""
    if isinstance(path, Run):
        return path
    if not isinstance(path, str | os.PathLike):
        raise UnlabeledError(f"expected a run (a Run or the path of its folder), got {type(path).__name__}")
    writer = being_written(Path(path))
    if writer is not None:
        raise UnlabeledError(
            f"{path} is being written by another process (pid {writer}); wait for it to finish, or stop it"
        )
    return Run(path)


def lock_file(out: Path) -> Path:
    """The lock a writer of run folder ``out`` holds: a hidden file beside it (inside,
    --overwrite would remove it). See ``unlabeled.train.run.run_lock``."""
    return out.parent / f".{out.name}.lock"


def being_written(out: Path) -> str | None:
    """The pid of the other process that holds ``out``'s writer lock, or None: none holds it,
    this process does, or this is one rank of a ``torchrun`` job (whose rank 0 holds it)."""
    import fcntl

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    try:
        fd = os.open(lock_file(out), os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        if holder == str(os.getpid()):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder
        return None  # a killed writer's lock file: the system released its lock
    finally:
        os.close(fd)  # releases the shared lock, if taken


class AdaptedSamples:
    """``collection``'s samples adapted to another run's ``modality`` as they are read
    (``Modality.adapt``: resized, resampled, or one channel at a time), for :func:`encode`."""

    def __init__(self, collection: Collection, modality: Any, source: Any) -> None:
        self.collection, self.modality, self.source = collection, modality, source

    def indices(self) -> np.ndarray:
        return self.collection.indices()

    def get(self, positions: np.ndarray) -> np.ndarray:
        return self.modality.adapt(self.collection.get(positions), self.source)


@torch.no_grad()
def encode(
    encoder: nn.Module,
    modality: Any,
    collection: Collection | AdaptedSamples,
    positions: np.ndarray | None = None,
    batch_size: int = EMBED_BATCH,
    device: str | torch.device = "auto",
    description: str = "embed",
    precision: str = "auto",
) -> np.ndarray:
    """The one embedding routine: ``encoder.embed`` over batches read from the collection,
    in ``precision`` (``auto``: bf16 where the device supports it), returned as float32 in the
    order of ``positions``. Pass :class:`AdaptedSamples` for a collection whose samples must be
    adapted to ``modality``; :func:`encode_into` writes into an array of the caller's."""
    check_count(batch_size, "batch_size", 1)
    pos = collection.indices() if positions is None else np.asarray(positions)
    factor = 1 if isinstance(collection, Collection) else modality.adapt_factor(collection.source)
    out = np.empty((len(pos), encoder.dim * factor), dtype=np.float32)
    return _fill(out, _embedded(encoder, modality, collection, pos, batch_size, device, precision), description)


@torch.no_grad()
def encode_into(
    out: np.ndarray,
    encoder: nn.Module,
    modality: Any,
    collection: Collection,
    device: str | torch.device = "auto",
    description: str = "embed",
    precision: str = "auto",
) -> np.ndarray:
    """:func:`encode` of every sample of ``collection``, written into ``out`` (a memory-mapped
    file, say, for pools larger than memory) of shape (samples, ``encoder.dim``)."""
    if out.shape != (len(collection), encoder.dim):
        raise ValueError(f"out has shape {out.shape}, expected {(len(collection), encoder.dim)}")
    batches = _embedded(encoder, modality, collection, collection.indices(), EMBED_BATCH, device, precision)
    return _fill(out, batches, description)


@torch.no_grad()  # a generator: the context holds while it runs, wherever it is consumed
def _embedded(
    encoder: nn.Module,
    modality: Any,
    collection: Collection | AdaptedSamples,
    pos: np.ndarray,
    batch_size: int,
    device: str | torch.device,
    precision: str,
) -> Iterable[np.ndarray]:
    """The embeddings of ``pos``, a batch at a time, as float32 (n, dim) arrays."""
    dev = resolve_device(device)
    encoder = fold_batch_norms(encoder.to(dev))  # eval mode; a copy where batch norms fold away
    bf16 = use_bf16(precision, dev)
    for start in range(0, len(pos), batch_size):
        chunk = pos[start : start + batch_size]
        x = modality.normalize(modality.prepare(collection.get(chunk), dev))
        with autocast(dev, bf16):
            z = encoder.embed(x)
        yield z.float().cpu().numpy().reshape(len(chunk), -1)


def _fill(out: np.ndarray, batches: Iterable[np.ndarray], description: str) -> np.ndarray:
    """``out``'s rows from ``batches`` in order, with a progress bar."""
    with progress() as bar:
        task, start = bar.add_task(description, total=len(out)), 0
        for z in batches:
            out[start : start + len(z)] = z
            start += len(z)
            bar.advance(task, len(z))
    return out


def write_embeddings(path: str | os.PathLike[str], ids: np.ndarray, vectors: np.ndarray, meta: dict[str, str]) -> Path:
    """Write ``id, vector`` rows to parquet (atomically), with ``meta`` in the schema."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
    table = pa.table({"id": pa.array([str(i) for i in ids], pa.string()), "vector": column})
    table = table.replace_schema_metadata({k: str(v) for k, v in meta.items()})
    ckpt.atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return Path(path)


def read_embeddings(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(ids, vectors, metadata) of an embeddings parquet file.

    The vectors are decoded a batch of rows at a time into one preallocated array: decoding the
    whole column at once took about five times the vectors' size in Arrow's memory pool, which
    keeps what it freed (Fashion-MNIST's 70k x 256 vectors: the reading process grew by 443 MiB
    at its peak; by batches 170 MiB)."""
    f = pq.ParquetFile(path)
    dim = f.schema_arrow.field("vector").type.list_size
    vectors = np.empty((f.metadata.num_rows, dim), dtype=np.float32)
    at = 0
    for batch in f.iter_batches(batch_size=4096, columns=["vector"]):
        part = batch.column(0).flatten().to_numpy().reshape(-1, dim)
        vectors[at : at + len(part)] = part
        at += len(part)
    meta = {k.decode(): v.decode() for k, v in (f.schema_arrow.metadata or {}).items()}
    ids = np.asarray(f.read(columns=["id"]).column("id").to_pylist(), dtype=object)
    pa.default_memory_pool().release_unused()
    return ids, vectors, meta


def embed(
    run: Run | str | os.PathLike[str],
    collection: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = EMBED_BATCH,
    device: str | torch.device = "auto",
    precision: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Embed every sample of ``collection`` with the run's encoder, in ``precision`` (default:
    the run's own, :attr:`Run.precision`); writes ``id, vector`` rows to ``out`` (default
    ``<run>/embeddings.parquet``) and returns its path. An existing ``out`` that is not an
    embeddings file is replaced only with ``overwrite``; one inside a collection never is."""
    run, col = open_run(run), open_collection(collection)
    check_count(batch_size, "batch_size", 1)
    if out is not None:
        out = folder(out)
        _check_embeddings_out(out, overwrite)
        out.parent.mkdir(parents=True, exist_ok=True)  # before the work, not after it
    precision = run.precision if precision is None else precision
    step, digest = run.step, run.digest()  # read before the weights are, and checked after
    vectors = run.encode(col, batch_size=batch_size, device=device, precision=precision)
    check_unchanged(run, step, digest)
    meta = {
        "precision": precision,  # what was asked (the cache compares it); computed_in: what ran
        "computed_in": "bf16" if use_bf16(precision, resolve_device(device)) else "fp32",
        "collection": str(col.path.resolve()),
        "fingerprint": col.fingerprint(),
        "step": str(step),
        "encoder": digest,
    }
    return write_embeddings(out or run.path / EMBEDDINGS_FILE, col.ids, vectors, meta)


def check_unchanged(run: Run, step: int, digest: str) -> None:
    """The run's weights are still those of ``step`` and ``digest``, read before they were
    loaded: embeddings labelled with one version's hash must not hold another's vectors."""
    if (run.step, run.digest()) != (step, digest):
        raise UnlabeledError(f"{run.path}'s weights changed while they were read (a run being written?); try again")


def _check_embeddings_out(out: Path, overwrite: bool) -> None:
    """Where ``embed --out`` may write: a Parquet file outside every collection, and in place
    of an existing file only if that is an embeddings file (which embed can write again) or
    with ``overwrite``: a user's own Parquet table, or a collection's index, is never lost."""
    if out.suffix.lower() != ".parquet":
        raise UnlabeledError(f"--out {out}: embeddings are written as Parquet; name the file *.parquet")
    if out.is_dir():
        raise UnlabeledError(f"--out {out} is a folder; name the Parquet file to write")
    held = holding_collection(out.parent)
    if held is not None:
        raise UnlabeledError(f"--out {out} lies inside the collection {held}; write the embeddings elsewhere")
    if out.exists() and not overwrite and not _is_embeddings(out):
        raise UnlabeledError(f"--out {out} exists and is not an embeddings file; pass --overwrite to replace it")


def _is_embeddings(path: Path) -> bool:
    """Whether ``path`` is a Parquet file that ``embed`` wrote (its columns and metadata)."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return False
    return schema.names == ["id", "vector"] and b"encoder" in (schema.metadata or {})


def features(run: Run, collection: Collection, positions: np.ndarray, **kw: Any) -> np.ndarray:
    """Trained features of ``positions``, read from the run's embeddings.parquet when it was
    written for this collection with these weights (:meth:`Run.digest`, not just the step: a
    run overwritten in place may reach the same step with other weights), computed otherwise."""
    path = run.path / EMBEDDINGS_FILE
    if path.exists():
        ids, vectors, meta = read_embeddings(path)
        if (
            meta.get("fingerprint") == collection.fingerprint()
            and meta.get("step") == str(run.step)
            and meta.get("encoder") == run.digest()
            and meta.get("precision", "auto") == run.precision  # not a file embedded otherwise by hand
            and len(ids) == len(collection)
            and (ids == collection.ids).all()
        ):
            return vectors[positions]
    return run.encode(collection, positions, **kw)
