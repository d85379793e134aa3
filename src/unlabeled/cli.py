"""The ``unlabeled`` command. Each subcommand is a thin wrapper over the Python API."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from unlabeled._console import UnlabeledError, console, unencodable
from unlabeled._memory import tune_process
from unlabeled._version import __version__

# Every command imports what it runs inside its own body: `unlabeled --help`, `--version` and a
# usage error then cost typer and rich alone (about 0.2 s), not PyTorch, scikit-learn and the
# rest (about 3 s on the 2-core AMD), and a Ctrl-C during those imports is the command's one line.

app = typer.Typer(
    help="Learn from unlabeled data: import, curate, pretrain, embed, select, bench, scaling, finetune, distil, "
    "selftrain, forget, grow, generate, perplexity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"unlabeled {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Learn from unlabeled data: import, curate, pretrain, embed, select, bench, scaling, finetune, distil,
    selftrain, forget, grow, generate, perplexity."""


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UnlabeledError(f"{what} must be comma-separated numbers, got {text!r}") from None


def parse_settings(items: list[str] | None, what: str) -> dict[str, object]:
    """``["temperature=0.2", "crop_scale=0.35,1"]`` -> ``{"temperature": 0.2, "crop_scale": [0.35, 1.0]}``."""
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UnlabeledError(f"{what} takes NAME=VALUE, got {item!r}")
        try:
            out[key] = [float(v) for v in value.split(",")] if "," in value else json.loads(value)
        except ValueError:
            out[key] = value
        if not _finite(out[key]):  # json reads NaN and Infinity (and 1e999) as numbers
            raise UnlabeledError(f"{what} {key}={value}: settings take finite numbers")
    return out


def _finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | dict):
        return all(map(_finite, value.values() if isinstance(value, dict) else value))
    return True


@app.command()
def datasets() -> None:
    """List the built-in real datasets (available offline)."""
    from unlabeled.bench.suites import builtin_suites, load_suite
    from unlabeled.data.builtins import BUILTINS
    from unlabeled.data.formats import ucr_names

    for b in BUILTINS.values():
        console.print(f"[bold]{b.name:<16}[/] {b.description}")
    console.print(f"[bold]{'ucr:NAME':<16}[/] UCR/UEA time-series sets bundled in aeon: " + ", ".join(ucr_names()))
    console.print(
        f"[bold]{'espeak-keywords':<16}[/] 2,160 spoken keywords synthesised with espeak-ng: 12 words, "
        "20 speakers (5 held out for test; speaker = group), 3 speeds, 3 pitches"
    )
    console.print("\nbenchmark suites (unlabeled bench RUN --suite NAME):")
    for name in builtin_suites():
        suite = load_suite(name)
        n = len(suite.tasks)
        console.print(f"[bold]{name:<16}[/] {suite.description} ({n} task{'s' if n != 1 else ''})")


@app.command("import")
def import_(
    source: Annotated[
        str, typer.Argument(help="built-in name, ucr:NAME, folder, table of series or text, or .npy file")
    ],
    dest: Annotated[Path, typer.Argument(help="folder to write the collection to")],
    modality: Annotated[
        str | None, typer.Option(help="image | series | audio | volume | text (inferred from the files when omitted)")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="labels file for a .npy source (one per row)")] = None,
    resize: Annotated[
        str | None, typer.Option(help="images: HxW instead of reporting other sizes; volumes: DxHxW")
    ] = None,
    sample_rate: Annotated[int | None, typer.Option(help="audio: resample to this rate (default 16000)")] = None,
    seconds: Annotated[
        float | None, typer.Option(help="audio: crop or pad to this duration (default: longest, at most 10)")
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(help="series tables: keep this per-sample column (a regression target, a patient id); repeatable"),
    ] = None,
    group_pattern: Annotated[
        str | None,
        typer.Option(help="folders: regex whose first group in a file's path is its group (speaker, patient)"),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(help="tables (CSV/TSV/Parquet/JSON lines): the column holding one document per row"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace DEST if it exists")] = False,
) -> None:
    """Import a dataset as a collection; bad files are reported and skipped."""
    from unlabeled.data import import_source

    report = import_source(
        source,
        dest,
        modality=modality,
        labels=labels,
        resize=resize,
        sample_rate=sample_rate,
        seconds=seconds,
        columns=column or (),
        group_pattern=group_pattern,
        text_column=text_column,
        overwrite=overwrite,
    )
    console.print(report.summary())


@app.command()
def pretrain(
    data: Annotated[Path, typer.Argument(help="collection to pretrain on (labels are ignored)")],
    out: Annotated[Path, typer.Option(help="run folder to write")],
    method: Annotated[
        str | None,
        typer.Option(
            help="self-supervised objective: simclr (default) | mae | jepa | ts2vec; text: mlm (default) | clm | simcse"
        ),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="cnn | transformer | tcn (default: cnn for images, tcn for series with simclr or "
            "ts2vec, transformer otherwise)"
        ),
    ] = None,
    size: Annotated[str | None, typer.Option(help="tiny | small | base (default: from data size)")] = None,
    minutes: Annotated[float | None, typer.Option(help="wall-time budget (default 10 if no --epochs)")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the data")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="samples per step (per process); default 128, fewer for a smaller training set")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate (AdamW)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:N]")] = "auto",
    option: Annotated[list[str] | None, typer.Option(help="objective setting NAME=VALUE, repeatable")] = None,
    encoder_option: Annotated[
        list[str] | None, typer.Option(help="encoder setting NAME=VALUE (patch=4,4 / pool=cls), repeatable")
    ] = None,
    augment: Annotated[list[str] | None, typer.Option(help="augmentation setting NAME=VALUE, repeatable")] = None,
    checkpoint_steps: Annotated[int, typer.Option(help="also checkpoint every N steps")] = 0,
    snapshot_seconds: Annotated[float, typer.Option(help="keep the weights every N seconds in RUN/snapshots")] = 0,
    compile: Annotated[bool, typer.Option(help="torch.compile the encoder (no gain measured on CPU)")] = False,
    shards: Annotated[int, typer.Option(help="SISA: encoders on this many disjoint shards (exact forgetting)")] = 1,
    init: Annotated[
        Path | None, typer.Option(help="start from this pretraining run's weights (continued pretraining)")
    ] = None,
    mix: Annotated[
        str | None,
        typer.Option(help='several collections at their shares of each batch: "DATA=0.9,data/domain=0.1"'),
    ] = None,
    upsample_last: Annotated[
        str | None,
        typer.Option(help='other shares over the last fraction of the steps: "0.2:data/domain=0.5"'),
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out from its checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run in --out")] = False,
) -> None:
    """Pretrain an encoder without labels."""
    from unlabeled.train.pretrain import pretrain as run_pretrain

    run_pretrain(
        data,
        out,
        method=method,
        encoder=encoder,
        size=size,
        minutes=minutes,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        precision=precision,
        device=device,
        method_options=parse_settings(option, "--option"),
        encoder_options=parse_settings(encoder_option, "--encoder-option"),
        augment=parse_settings(augment, "--augment"),
        checkpoint_steps=checkpoint_steps,
        snapshot_seconds=snapshot_seconds,
        compile=compile,
        shards=shards,
        init=init,
        mix=mix,
        upsample_last=upsample_last,
        resume=resume,
        overwrite=overwrite,
    )


@app.command("select")
def select_(
    pool: Annotated[Path, typer.Argument(help="collection to select from")],
    out: Annotated[Path, typer.Option(help="folder for the selected collection (refers to the pool's arrays)")],
    method: Annotated[str, typer.Option(help="random | kcenter | simcore | dedup | target-shift")] = "random",
    budget: Annotated[float | None, typer.Option(help="samples to keep (a fraction of the pool if below 1)")] = None,
    encoder: Annotated[Path | None, typer.Option(help="pretrained run whose embeddings drive the selection")] = None,
    target: Annotated[
        Path | None, typer.Option(help="collection of the data you care about (simcore, target-shift)")
    ] = None,
    threshold: Annotated[float, typer.Option(help="dedup: cosine similarity counting as duplicate")] = 0.95,
    centroids: Annotated[int | None, typer.Option(help="k of the k-means (simcore, dedup)")] = None,
    stop_similarity: Annotated[
        float | None, typer.Option(help="simcore: stop a centroid below this similarity")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    overwrite: Annotated[bool, typer.Option(help="replace OUT if it exists")] = False,
) -> None:
    """Choose what to pretrain on: coreset, target-aware selection, or deduplication."""
    from unlabeled.select import select

    col = select(
        pool,
        method=method,
        out=out,
        budget=budget,
        encoder=encoder,
        target=target,
        threshold=threshold,
        centroids=centroids,
        stop_similarity=stop_similarity,
        seed=seed,
        device=device,
        overwrite=overwrite,
    )
    samples = f"{len(col)} sample{'s' * (len(col) != 1)}"
    console.print(f"selected {samples} -> {col.path} (see {col.path / 'selection.json'})")


@app.command("curate")
def curate_(
    source: Annotated[
        Path | None,
        typer.Argument(help="text collection, or files `import` reads as text (.txt/.md/.jsonl/.csv/.parquet)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="folder for the curated text collection")] = None,
    languages: Annotated[str | None, typer.Option(help="languages to keep, comma-separated ISO 639-1 (en,de)")] = None,
    lid_threshold: Annotated[float, typer.Option(help="least language-ID probability to keep a document")] = 0.65,
    steps: Annotated[str, typer.Option(help="some of lid,dedup,quality (in that order)")] = "lid,dedup,quality",
    option: Annotated[
        list[str] | None, typer.Option(help="filter setting FILTER.NAME=VALUE (gopher_quality.min_doc_words=5)")
    ] = None,
    workers: Annotated[int, typer.Option(help="tasks run at once (datatrove's local executor)")] = 1,
    tasks: Annotated[int | None, typer.Option(help="shards of the work (default: the CPU cores, at most 16)")] = None,
    text_column: Annotated[str | None, typer.Option(help="the text column of a CSV/Parquet/JSONL source")] = None,
    explain: Annotated[Path | None, typer.Option(help="print what curated this collection: kept, removed, why")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace OUT if it exists")] = False,
) -> None:
    """Curate a text corpus as FineWeb2 does: language ID, MinHash dedup, quality filters, weights."""
    from unlabeled.curate import curate, curate_explain

    if explain is not None:
        if source is not None or out is not None:  # both were dropped without a word
            raise UnlabeledError("curate --explain COLLECTION prints what curated it; it takes no SOURCE or --out")
        given = {
            "--languages": languages is not None,
            "--lid-threshold": lid_threshold != 0.65,
            "--steps": steps != "lid,dedup,quality",
            "--option": bool(option),
            "--workers": workers != 1,
            "--tasks": tasks is not None,
            "--text-column": text_column is not None,
            "--overwrite": overwrite,
        }
        if any(given.values()):  # a curation's settings, ignored without a word
            raise UnlabeledError(f"curate --explain takes no {', '.join(k for k, v in given.items() if v)}")
        console.print(escape(curate_explain(explain)))
        return
    if source is None or out is None:
        raise UnlabeledError("curate takes SOURCE and --out (or --explain COLLECTION)")
    curate(
        source,
        out,
        languages=[x.strip() for x in languages.split(",") if x.strip()] if languages else None,
        lid_threshold=lid_threshold,
        steps=[x.strip() for x in steps.split(",") if x.strip()],
        options=parse_settings(option, "--option"),
        workers=workers,
        tasks=tasks,
        text_column=text_column,
        overwrite=overwrite,
    )


@app.command("make-authors")
def make_authors_(
    out: Annotated[Path, typer.Option(help="folder for the benchmark's text collection")],
    authors: Annotated[int, typer.Option(help="how many fictitious authors (TOFU has 200)")] = 200,
    seed: Annotated[int, typer.Option(help="the same seed makes the same benchmark")] = 0,
    overwrite: Annotated[bool, typer.Option(help="replace OUT if it exists")] = False,
) -> None:
    """Generate a fictitious-author benchmark for forgetting in language models (TOFU, offline)."""
    from unlabeled.data.authors import make_authors

    make_authors(out, authors=authors, seed=seed, overwrite=overwrite)  # it says what it wrote


@app.command("finetune")
def finetune_(
    run: Annotated[Path | None, typer.Argument(help="pretrained run to start from (omit: from scratch)")] = None,
    task: Annotated[Path, typer.Option(help="labelled collection")] = Path("."),
    out: Annotated[Path, typer.Option(help="run folder for the classifier")] = Path("runs/clf"),
    fraction: Annotated[
        float | None, typer.Option(help="train on this stratified share of the labels (drawn with --seed, as bench)")
    ] = None,
    shots: Annotated[int | None, typer.Option(help="train on this many labels per class")] = None,
    epochs: Annotated[float, typer.Option()] = 5,
    batch_size: Annotated[int | None, typer.Option(help="default 128; --objective clm: fitted to the corpus")] = None,
    lr: Annotated[float, typer.Option()] = 1e-3,
    encoder: Annotated[
        str | None, typer.Option(help="from scratch: cnn | transformer | tcn (default: cnn for images, tcn for series)")
    ] = None,
    size: Annotated[str | None, typer.Option(help="from scratch: tiny | small | base")] = None,
    shards: Annotated[int, typer.Option(help="SISA: this many isolated shard models (cheap exact forgetting)")] = 1,
    augment: Annotated[
        bool, typer.Option(help="light augmentation while training (--no-augment to fit the samples as they are)")
    ] = True,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16")] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    overwrite: Annotated[bool, typer.Option(help="replace an existing run in --out")] = False,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run in --out")] = False,
    objective: Annotated[
        str,
        typer.Option(
            help="classify (default): a classifier on the labels; clm: a causal language model (RUN) "
            "trained further on the task's text, as TOFU fine-tunes on its authors"
        ),
    ] = "classify",
) -> None:
    """Train a classifier (encoder + linear head) on a labelled task, or (--objective clm) a
    language model further on a task's text."""
    from unlabeled.train.finetune import finetune

    finetune(
        run,
        task,
        out,
        fraction=fraction,
        shots=shots,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        encoder=encoder,
        size=size,
        seed=seed,
        shards=shards,
        augment=augment,
        precision=precision,
        device=device,
        overwrite=overwrite,
        resume=resume,
        objective=objective,
    )


@app.command("distil")
def distil_(
    teacher: Annotated[Path, typer.Argument(help="classifier run to distil from (made by finetune)")],
    unlabeled: Annotated[Path, typer.Option(help="collection of unlabeled samples (its test split is left out)")],
    out: Annotated[Path, typer.Option(help="run folder for the student classifier")] = Path("runs/student"),
    encoder: Annotated[str | None, typer.Option(help="student encoder (default: the teacher's)")] = None,
    size: Annotated[str | None, typer.Option(help="student size: tiny | small | base (default: the teacher's)")] = None,
    init: Annotated[Path | None, typer.Option(help="start the student from this pretrained run's encoder")] = None,
    temperature: Annotated[float, typer.Option(help="softmax temperature of teacher and student")] = 1.0,
    label_weight: Annotated[
        float,
        typer.Option(help="weight of the true label in the targets of the samples the teacher learnt the labels of"),
    ] = 0.0,
    select: Annotated[
        str, typer.Option(help="all | llkd (samples where the teacher is confident and the student uncertain)")
    ] = "all",
    epochs: Annotated[float | None, typer.Option(help="passes over the unlabeled samples (default 5)")] = None,
    minutes: Annotated[float | None, typer.Option(help="train for this much wall time instead")] = None,
    batch_size: Annotated[int, typer.Option()] = 128,
    lr: Annotated[float, typer.Option()] = 1e-3,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16")] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    resume: Annotated[bool, typer.Option(help="continue an interrupted run in --out")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run in --out")] = False,
) -> None:
    """Distil a classifier into a student on unlabeled data (SimCLRv2's third step)."""
    from unlabeled.train.distil import distil

    run = distil(
        teacher,
        unlabeled,
        out,
        encoder=encoder,
        size=size,
        init=init,
        temperature=temperature,
        label_weight=label_weight,
        select=select,
        epochs=epochs,
        minutes=minutes,
        batch_size=batch_size,
        lr=lr,
        precision=precision,
        seed=seed,
        device=device,
        resume=resume,
        overwrite=overwrite,
    )
    console.print(f"student -> {run.path}")


@app.command("selftrain")
def selftrain_(
    run: Annotated[
        Path | None, typer.Argument(help="pretrained (or classifier) run to start from (omit: from scratch)")
    ] = None,
    task: Annotated[Path, typer.Option(help="collection with a few labels (its test split is left out)")] = Path("."),
    out: Annotated[Path, typer.Option(help="run folder for the classifier")] = Path("runs/selftrain"),
    fraction: Annotated[
        float | None,
        typer.Option(help="label this stratified share of the train samples (drawn with --seed, as bench)"),
    ] = None,
    shots: Annotated[int | None, typer.Option(help="label this many train samples per class")] = None,
    threshold: Annotated[float, typer.Option(help="confidence a pseudo-label needs")] = 0.95,
    ratio: Annotated[int, typer.Option(help="unlabelled samples per labelled one in a batch (FixMatch's mu)")] = 2,
    unlabeled_weight: Annotated[float, typer.Option(help="weight of the pseudo-label loss")] = 1.0,
    ema: Annotated[
        float, typer.Option(help="keep an EMA of the model with this decay: it is exported (and pseudo-labels)")
    ] = 0.0,
    ema_teacher: Annotated[
        bool, typer.Option(help="with --ema: the EMA gives the pseudo-labels (Mean Teacher); no: the model (FixMatch)")
    ] = True,
    adaptive: Annotated[
        float, typer.Option(help="FreeMatch's self-adaptive threshold, averaged with this momentum (e.g. 0.999)")
    ] = 0.0,
    align: Annotated[
        float, typer.Option(help="ReMixMatch's distribution alignment, averaged with this momentum (e.g. 0.999)")
    ] = 0.0,
    soft: Annotated[
        float, typer.Option(help="soft pseudo-labels sharpened at this temperature (UDA, e.g. 0.4); 0: hard")
    ] = 0.0,
    head: Annotated[
        str, typer.Option(help="from a pretrained run: probe (a linear probe on the labels first, LP-FT) | random")
    ] = "probe",
    augment: Annotated[
        list[str] | None,
        typer.Option(help="strong-view augmentation setting NAME=VALUE (view_size=0: full size), repeatable"),
    ] = None,
    recalibrate: Annotated[
        int,
        typer.Option(help="after training, batch-norm statistics from this many unaugmented pool samples (0: none)"),
    ] = 10_000,
    encoder: Annotated[
        str | None, typer.Option(help="from scratch: cnn | transformer | tcn (default: cnn for images, tcn for series)")
    ] = None,
    size: Annotated[str | None, typer.Option(help="from scratch: tiny | small | base")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the unlabelled samples (default 5)")] = None,
    minutes: Annotated[float | None, typer.Option(help="train for this much wall time instead")] = None,
    batch_size: Annotated[int, typer.Option(help="labelled samples per batch")] = 32,
    lr: Annotated[float, typer.Option()] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="the optimizer's weight decay")] = 1e-4,
    optimizer: Annotated[
        str, typer.Option(help="adamw | sgd (Nesterov momentum, decay on weights alone: FixMatch's)")
    ] = "adamw",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16")] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    resume: Annotated[bool, typer.Option(help="continue an interrupted run in --out")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run in --out")] = False,
) -> None:
    """Self-train a classifier on a few labels and the unlabeled samples (FixMatch)."""
    options = dict(locals())  # the options, named as selftrain's keywords (before any import adds a local)
    options["augment"] = parse_settings(augment, "--augment") or None
    from unlabeled.train.selftrain import selftrain

    result = selftrain(options.pop("run"), options.pop("task"), options.pop("out"), **options)
    console.print(f"self-trained classifier -> {result.path}")


def _refuse_request_options(which: str, given: dict[str, Any]) -> None:
    """forget --log and --verify take a run alone: a request's options given with them are refused."""
    log = which == "--log"
    named = {
        "--ids": given["ids"] is not None,
        "--class": given["class_"] is not None,
        "--group": given["group"] is not None,
        "--values": given["values"] is not None,
        "--method": given["method"] is not None,
        "--epochs": given["epochs"] is not None,
        "--lr": given["lr"] is not None,
        "--option": bool(given["option"]),
        "--seed": given["seed"] != 0,
        "--overwrite": given["overwrite"],
        "--device": log and given["device"] != "auto",
        "--ancestors": log and given["ancestors"] is not None,
    }
    if any(named.values()):
        raise UnlabeledError(f"{which} takes no {', '.join(k for k, v in named.items() if v)}: they make a request")


@app.command("forget")
def forget_(
    run: Annotated[Path | None, typer.Argument(help="classifier (or, with laf/retrain, encoder) run")] = None,
    ids: Annotated[Path | None, typer.Option(help="file of sample ids to forget, one per line")] = None,
    class_: Annotated[str | None, typer.Option("--class", help="forget every training sample of this class")] = None,
    group: Annotated[
        str | None, typer.Option(help="forget every training sample whose COLUMN holds one of --values (author)")
    ] = None,
    values: Annotated[Path | None, typer.Option(help="file of --group values, one per line")] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="classifiers: salun (default) | retrain | sisa | finetune | ga | npo | scrub; encoders: "
            "retrain (default) | sisa | laf; language models: ssd (default) | npo | ga | graddiff | simnpo | rmu "
            "| whp | eco | retrain"
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="run folder for the result (the original is never changed)")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the method's stream (default per method)")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate (default per method)")] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="method setting NAME=VALUE, repeatable (npo: beta, retain_weight)")
    ] = None,
    verify: Annotated[Path | None, typer.Option(help="verify a forget result against retraining")] = None,
    log: Annotated[Path | None, typer.Option(help="show the audit log of a run")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    overwrite: Annotated[bool, typer.Option(help="replace a finished result in --out")] = False,
    ancestors: Annotated[
        str | None,
        typer.Option(
            help="retrain/sisa when the run's pretrained encoder (or --init run) trained on the samples: refuse "
            "(default), retrain (it too: exact) or keep (retrain this run alone: not exact); --verify: keep"
        ),
    ] = None,
) -> None:
    """Remove samples or a class from a trained classifier or encoder; --verify and --log audit it."""
    from unlabeled.forget import forget
    from unlabeled.forget import verify as verify_request

    if log is not None and verify is not None:
        raise UnlabeledError("--log shows a run's audit log and --verify checks a result: one at a time")
    if (log is not None or verify is not None) and (run is not None or out is not None):
        raise UnlabeledError("--log and --verify take their run as their value; give no RUN or --out with them")
    if log is not None or verify is not None:  # a request's options were ignored without a word
        _refuse_request_options("--log" if log is not None else "--verify", locals())
    if log is not None:
        print_audit_log(log)
        return
    if verify is not None:
        print_verification(verify_request(verify, device=device, ancestors=ancestors or "keep"))
        return
    if run is None or out is None:
        raise UnlabeledError("forget needs RUN and --out (or --verify RUN, or --log RUN)")
    id_list = None if ids is None else read_id_file(ids)
    if (group is None) != (values is None):
        raise UnlabeledError("--group and --values go together: the column, and a file of its values to forget")
    forget(
        run,
        method=method,
        out=out,
        ids=id_list,
        class_=class_,
        group=group,
        values=None if values is None else read_id_file(values, "values"),
        epochs=epochs,
        lr=lr,
        options=parse_settings(option, "--option"),
        seed=seed,
        device=device,
        overwrite=overwrite,
        ancestors=ancestors or "refuse",
    )


def print_audit_log(log: Path) -> None:
    """A run's forget requests, one line each, as ``forget --log`` prints them."""
    from unlabeled.forget import AuditLog
    from unlabeled.runs import open_run

    rows = AuditLog(open_run(log).path).requests()  # open_run: a clear error if LOG is not a run
    if not rows:
        console.print(f"no forget requests recorded in {log}")
    else:
        console.print("request  started  method  forgot  ids  status  -> output")
    for r in rows:
        gap = (r.get("verification") or {}).get("gaps", {}).get("average_gap")
        gap_text = f"  average gap {gap:.4f}" if gap is not None else ""
        exact = {True: " (exact)", False: " (approximate)"}.get(r.get("exact"), "")
        made_by = "  (verify's reference)" if Path(str(r.get("output"))).name == "reference" else ""
        console.print(
            f"{r['request']}  {r.get('started', '?')}  {r.get('method')}  forgot {r.get('forgotten')}  "
            f"ids {r.get('ids_hash')}  {r['status']}{exact}{gap_text}  -> {r.get('output')}{made_by}"
        )


def print_verification(table: dict[str, Any]) -> None:
    """A forget request's verification table, as ``forget --verify`` prints it."""
    from unlabeled.forget import verify_metrics

    console.print(f"request {table['request']}: {table['method']}, {table['forgotten']} samples forgotten")
    console.print(reference_line(table["reference"]))
    first = next(iter(table["rows"].values()))
    metrics = [m for m in verify_metrics("forget_cka" in first, "forget_quality" in first) if m in first]
    w = max(16, *(len(m) + 2 for m in metrics))  # a name as long as the column ran into the next
    console.print(f"{'model':<12}" + "".join(f"{m:>{w}}" for m in metrics))
    for name, r in table["rows"].items():
        console.print(f"{name:<12}" + "".join(f"{r[m]:>{w}.4f}" for m in metrics))
    g = table["gaps"]
    console.print(
        f"{'gap':<12}"
        + "".join(f"{g[m + '_gap']:>{w}.4f}" if m + "_gap" in g else f"{'':>{w}}" for m in metrics)
        + f"   average gap {g['average_gap']:.4f}"
    )
    console.print(
        f"time {table['seconds']:.1f} s against retraining's {table['retrain_seconds']:.1f} s "
        f"({table['time_ratio']:.1%})"
    )


def reference_line(ref: dict[str, Any]) -> str:
    """What the verification's retrained reference is: exact, with which ancestors retrained."""
    if ref["exact"] is None:
        return "reference: retrained before ancestors were checked (exactness not recorded)"
    line = "reference: exact retrain" if ref["exact"] else "reference: NOT exact"
    if ref["retrained_ancestors"]:
        line += "; ancestors retrained: " + ", ".join(ref["retrained_ancestors"])
    if ref["kept_ancestors_that_saw"]:
        line += "; kept ancestors that trained on the forget set: " + ", ".join(ref["kept_ancestors_that_saw"])
    return line


@app.command()
def embed(
    run: Annotated[Path, typer.Argument(help="run folder")],
    data: Annotated[Path, typer.Argument(help="collection to embed")],
    out: Annotated[Path | None, typer.Option(help="parquet file (default RUN/embeddings.parquet)")] = None,
    device: Annotated[str, typer.Option()] = "auto",
    precision: Annotated[
        str | None, typer.Option(help="auto | fp32 | bf16 (default: the precision the run trained in)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an --out file that is not an embeddings file")] = False,
) -> None:
    """Write the embedding of every sample (id, vector) to parquet."""
    from unlabeled.runs import embed as run_embed

    if overwrite and out is None:  # the default file is replaced anyway: the flag did nothing
        raise UnlabeledError("--overwrite replaces an --out file; without --out, RUN/embeddings.parquet is rewritten")
    path = run_embed(run, data, out, device=device, precision=precision, overwrite=overwrite)
    console.print(f"wrote {path}")


@app.command()
def generate(
    run: Annotated[Path, typer.Argument(help="a causal language model (pretrain --method clm)")],
    prompt: Annotated[str, typer.Argument(help="text to continue")],
    max_tokens: Annotated[int, typer.Option(help="tokens to add at most")] = 40,
    temperature: Annotated[float, typer.Option(help="sampling temperature (0: the most likely token)")] = 0.8,
    top_k: Annotated[int, typer.Option(help="sample among the k most likely tokens (0: all)")] = 40,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "auto",
) -> None:
    """Continue PROMPT by sampling from a causal language model."""
    from unlabeled import lm

    text = lm.generate(
        run, prompt, max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed, device=device
    )
    console.print(text, markup=False, highlight=False)


@app.command()
def perplexity(
    run: Annotated[Path, typer.Argument(help="a causal language model (pretrain --method clm)")],
    data: Annotated[Path, typer.Argument(help="a text collection")],
    split: Annotated[str, typer.Option(help="the split to score (all: every document)")] = "test",
    device: Annotated[str, typer.Option()] = "auto",
) -> None:
    """Perplexity and bits per byte of a causal language model on a text collection's split,
    beside xz -9e and zstd -19 on the same documents."""
    from unlabeled import lm
    from unlabeled.data import open_collection

    got = lm.perplexity(run, data, split=split, device=device)
    col = open_collection(data)
    anchors = lm.compressor_bits_per_byte([str(t) for t in col.get(lm.scored_positions(col, split))])
    console.print(
        f"{split}: {got['documents']:.0f} documents, {got['tokens']:.0f} tokens, {got['bytes']:.0f} bytes\n"
        f"  perplexity {got['perplexity']:.2f}, bits per byte {got['bits_per_byte']:.4f}\n"
        f"  xz -9e {anchors['xz -9e']:.4f}, zstd -19 {anchors['zstd -19']:.4f} bits per byte"
    )


@app.command()
def grow(
    run: Annotated[Path, typer.Argument(help="a pretrained transformer run (mlm, clm or simcse)")],
    out: Annotated[Path, typer.Option(help="the grown run's folder")],
    size: Annotated[str, typer.Option(help="the larger size: tiny -> small")] = "small",
    mode: Annotated[str, typer.Option(help="fpi (the same function) or aki (new units from the next layer)")] = "fpi",
    overwrite: Annotated[bool, typer.Option(help="replace a run in --out")] = False,
) -> None:
    """Grow RUN's model to a larger size (bert2BERT); continue it with `pretrain --init OUT`."""
    from unlabeled.train.grow import grow as grow_run

    grow_run(run, size, out, mode=mode, overwrite=overwrite)


def read_id_file(path: Path, what: str = "ids") -> list[str]:
    """The sample ids (or group values: ``what``) of a file, one a line: blank lines and the
    spaces around one are ignored, a repeated one counts once. A missing or unreadable file,
    one that is not UTF-8 text, or one that lists none is an UnlabeledError naming it."""
    if path.is_dir():
        raise UnlabeledError(f"{what} file {path} is a folder; give the file that lists them, one a line")
    if not path.exists():  # a pipe (<(...)) is no regular file, and reads as one
        raise UnlabeledError(f"{what} file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Notepad's) is no part of the first id
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise UnlabeledError(
            f"{what} file {path} is not UTF-8 text (byte {e.object[e.start]:#x} on line {line})"
        ) from None
    # lines split at "\n" alone and a quoted line decoded, as a run's own id files are written
    # (forgotten-ids.txt fed back): an id may hold U+2028, a line break or spaces at its ends
    from unlabeled.runs import read_id

    lines = (line.removesuffix("\r") for line in text.split("\n"))
    ids = list(dict.fromkeys(read_id(line) if line.startswith('"') else line.strip() for line in lines if line.strip()))
    if not ids:
        raise UnlabeledError(f"{what} file {path} lists no {what} (one a line)")
    return ids


def _names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _whole(values: list[float], what: str) -> list[int]:
    if any(not math.isfinite(v) or v != int(v) for v in values):  # nan and inf too, before int() fails
        raise UnlabeledError(f"{what} takes whole numbers, got {', '.join(f'{v:g}' for v in values)}")
    return [int(v) for v in values]


@app.command()
def bench(
    runs: Annotated[list[Path], typer.Argument(help="one or more run folders")],
    task: Annotated[Path | None, typer.Option(help="labelled collection to evaluate on")] = None,
    suite: Annotated[
        str | None, typer.Option(help="a built-in suite (see `unlabeled datasets`) or a suite .toml file")
    ] = None,
    fractions: Annotated[str, typer.Option(help="label fractions of the train split")] = "0.01,0.1,1",
    shots: Annotated[str, typer.Option(help="labelled samples per class, e.g. 1,5,10 (k-shot)")] = "",
    seeds: Annotated[int, typer.Option(help="repetitions per setting")] = 3,
    probes: Annotated[
        str,
        typer.Option(
            help="comma-separated: linear,ridge,knn,nb,mlp (frozen), finetune,lora,svfit (trained) and semi "
            "(FixMatch with the rest of the train split, unlabelled)"
        ),
    ] = "linear,knn,nb",
    baselines: Annotated[
        str,
        typer.Option(
            help="comma-separated: raw,random-init,supervised (from scratch; trains per setting),minirocket (series)"
        ),
    ] = "raw,random-init,supervised,minirocket",
    target_column: Annotated[
        str, typer.Option(help="column to predict: label, or a numeric column for regression")
    ] = "label",
    group_column: Annotated[
        str | None, typer.Option(help="column (patient, speaker) never on both sides of a split")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="primary metric: accuracy, balanced_accuracy, macro_f1, auroc; mae, rmse, r2"),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="classification | regression (default: regression for a numeric --target-column)"),
    ] = None,
    split: Annotated[str, typer.Option(help="auto | given | stratified | group")] = "auto",
    out: Annotated[Path | None, typer.Option(help="folder for bench.json and report.html")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="where suite tasks are imported (default $UNLABELED_DATA or ~/.cache/unlabeled/suites)"),
    ] = None,
    device: Annotated[str, typer.Option()] = "auto",
) -> None:
    """Score encoders with few labels on a task or a suite, against raw-feature, random-init and
    supervised-from-scratch baselines; writes bench.json and one report.html."""
    from unlabeled.bench import bench as run_bench

    result = run_bench(
        runs,
        task,
        suite=suite,
        fractions=_floats(fractions, "--fractions"),
        shots=_whole(_floats(shots, "--shots"), "--shots"),
        seeds=seeds,
        probes=_names(probes),
        baselines=_names(baselines),
        target=target_column,
        group=group_column,
        metric=metric,
        kind=kind,
        split=split,
        out=out,
        device=device,
        data_dir=data_dir,
    )
    console.print(result.table())


@app.command()
def scaling(
    pool: Annotated[Path, typer.Argument(help="unlabeled collection to pretrain on (random subsets of it)")],
    task: Annotated[Path, typer.Option(help="labelled collection to probe on")],
    out: Annotated[Path, typer.Option(help="folder for the subsets, runs, scaling.json and scaling.html")],
    pool_sizes: Annotated[str, typer.Option(help="fractions of the pool (m)")] = "0.1,0.3,1",
    fractions: Annotated[str, typer.Option(help="label fractions of the task's train split (n)")] = "0.01,0.1",
    method: Annotated[str, typer.Option()] = "simclr",
    epochs: Annotated[
        float | None, typer.Option(help="budget in passes over the WHOLE pool (the same steps for every m)")
    ] = None,
    minutes: Annotated[float | None, typer.Option(help="budget in wall-clock minutes per run")] = None,
    batch_size: Annotated[int, typer.Option(help="pretraining batch, the same for every m")] = 128,
    probe: Annotated[str, typer.Option()] = "linear",
    seeds: Annotated[int, typer.Option()] = 3,
    device: Annotated[str, typer.Option()] = "auto",
) -> None:
    """How error falls with unlabeled count m and labelled count n: pretrain on pool subsets,
    probe at label fractions, fit error ≈ e + a/m + b/n."""
    from unlabeled.bench.scaling import scaling as run_scaling

    result = run_scaling(
        pool,
        task,
        out,
        pool_sizes=_floats(pool_sizes, "--pool-sizes"),
        fractions=_floats(fractions, "--fractions"),
        probe=probe,
        seeds=seeds,
        method=method,
        epochs=epochs,
        minutes=minutes,
        batch_size=batch_size,
        device=device,
    )
    console.print(result.table())


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the data, the run and the report")] = Path("demo"),
    minutes: Annotated[float, typer.Option(help="pretraining budget")] = 7.5,
    seeds: Annotated[int, typer.Option()] = 3,
    precision: Annotated[str, typer.Option(help="auto | fp32 (what a CPU without bf16 gets) | bf16")] = "auto",
    semi: Annotated[
        bool,
        typer.Option(
            "--semi",
            help="then fine-tuning and FixMatch at 1% of the labels, from the run and from scratch "
            "(about 15 more minutes a seed on 2 cores)",
        ),
    ] = False,
) -> None:
    """The whole path on Fashion-MNIST: import, pretrain without labels, bench, report."""
    run_demo(out, minutes=minutes, seeds=seeds, precision=precision, semi=semi)


def run_demo(out: Path, **options: Any) -> None:
    """:func:`unlabeled.demo.run_demo`, imported when the demo runs."""
    from unlabeled.demo import run_demo as demo_

    demo_(out, **options)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that what is being written is cleaned up on the way
    out (an import's temporary folder, say); training handles SIGTERM itself (it checkpoints).
    Not a KeyboardInterrupt, which click turns into an exit of its own."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    """The ``unlabeled`` command. A failure is one line and exit code 2: an UnlabeledError (bad
    input) by its message, an OSError (a full disk, a file that cannot be read) by its reason
    and path; SIGTERM and Ctrl-C stop it after cleaning up (exit codes 143 and 130)."""
    tune_process()  # process-wide settings belong to the entry point, never to a library call
    signal.signal(signal.SIGTERM, _terminate)
    try:
        _run_app()
    except typer.TyperException as e:  # a usage error (typer's copy of click's): an unknown option, a word for a number
        _usage_error(e)
    except UnlabeledError as e:
        _say_error(str(e))
        sys.exit(2)
    except UnicodeEncodeError as e:  # a path or word given in bytes that are not UTF-8
        what = unencodable(e)
        if what is None or not what.startswith("byte"):  # not the command line's bytes: a bug to see whole
            raise
        shown = e.object.encode("utf-8", "backslashreplace").decode()
        console.print(f"[red]error:[/] {escape(shown)} is not UTF-8 ({what}): name it in UTF-8")
        sys.exit(2)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        _say_error(_file_in_the_way(e) or f"{e.strerror or e}{where}")
        sys.exit(2)
    except Terminated:
        console.print("[yellow]terminated[/] (SIGTERM)")
        sys.exit(143)
    except KeyboardInterrupt as e:
        _interrupted(e)
    except SystemExit as e:  # typer turns a Ctrl-C inside a command into exit code 130, silently
        interrupt = _cause(e, KeyboardInterrupt)
        if interrupt is None:
            raise
        _interrupted(interrupt)


def _say_error(message: str) -> None:
    """Print a failure's one line, once per machine under ``torchrun``: every process meets the
    same bad input and printed it, one line per process. The first of a machine's processes to
    reach a message prints it (a file named by the launcher's pid and the message, made
    exclusively, tells the others); a message only one process meets is still printed."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        key = hashlib.sha256(f"{os.getppid()} {message}".encode()).hexdigest()[:20]
        try:
            os.close(os.open(Path(tempfile.gettempdir()) / f"unlabeled-said-{key}", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        except OSError:
            pass  # no temporary folder to write to: better twice than never
    console.print(f"[red]error:[/] {escape(message)}")


def _file_in_the_way(e: OSError) -> str | None:
    """A folder that could not be made because a file holds its name or one of its parents'
    (``--out notes.txt/run``), said so: the system's own words are a bare "File exists"."""
    if not isinstance(e, FileExistsError | NotADirectoryError) or not isinstance(e.filename, str):
        return None
    for path in (Path(e.filename), *Path(e.filename).parents):
        if path.is_file():
            return f"{path} is a file, where a folder was to be made for {e.filename}"
    return None


def _run_app() -> None:
    """The commands without typer's own handling around them (``app()``): its usage errors,
    printed as a framed box of six lines, and Ctrl-C, turned into a silent exit, come to
    :func:`main` as they are."""
    command = typer.main.get_command(app)
    _refuse_empty_paths(command, sys.argv[1:])
    try:
        with command.make_context("unlabeled", sys.argv[1:]) as ctx:
            command.invoke(ctx)
    except typer.Exit as e:  # --help, and a command that ends with typer.Exit
        if e.exit_code:
            sys.exit(e.exit_code)


def _takes_a_path(hint: Any) -> bool:
    return hint is Path or any(_takes_a_path(h) for h in typing.get_args(hint))


def _refuse_empty_paths(command: Any, argv: list[str]) -> None:
    """An empty path (``--out "$UNSET"``) is an error: typer reads "" as the current folder, so
    a run was written there, and an import read it, without a word."""
    sub = getattr(command, "commands", {}).get(argv[0]) if argv else None
    if sub is None or sub.callback is None:
        return
    hints = typing.get_type_hints(sub.callback)
    options = {o: p for p in sub.params if p.param_type_name == "option" and not p.is_flag for o in p.opts}
    arguments = [p for p in sub.params if p.param_type_name == "argument"]
    place, i = 0, 1
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if word.startswith("--") and name in options:
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else None
            if value == "" and _takes_a_path(hints.get(options[name].name)):
                raise UnlabeledError(f"{name} is empty (an unset variable?): give a path")
        elif not word.startswith("-") and place < len(arguments):
            if word == "" and _takes_a_path(hints.get(arguments[place].name)):
                raise UnlabeledError(f"{arguments[place].name.upper()} is empty (an unset variable?): give a path")
            place += 1
        i += 1


def _usage_error(e: typer.TyperException) -> None:
    """A usage error in one line and exit code 2; a command given no arguments shows its help."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        console.print(escape(ctx.get_help()))
        sys.exit(2)
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    console.print(f"[red]error:[/] {escape(where + message)} (see --help)")
    sys.exit(2)


def _interrupted(e: BaseException) -> None:
    if not getattr(e, "reported", False):  # training says where it stopped; anything else, here
        console.print("[yellow]interrupted[/] (Ctrl-C)")
    sys.exit(130)


def _cause(e: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``e``'s chain of causes and contexts."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


if __name__ == "__main__":
    main()
