"""``unlabeled grow``: a pretrained run's model made larger (bert2BERT), written as a run that
``pretrain --init`` continues. The weight mapping is :mod:`unlabeled.models.grow`."""

from __future__ import annotations

import copy
import os
from dataclasses import replace

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import folder
from unlabeled.models.grow import MODES, TIED_NORMS, grow_state
from unlabeled.models.transformer import TRANSFORMER_SIZES
from unlabeled.objectives import self_distil
from unlabeled.runs import TRAINING_IDS, Run, open_run
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.run import build, claim_run_dir, refuse_out_at, remove_run_dir, start_point
from unlabeled.train.spec import RunSpec


def _check(src: Run, size: str, mode: str) -> None:
    enc = src.config["encoder"]
    if src.kind != "encoder" or "sisa" in src.config:
        raise UnlabeledError(f"grow takes a single pretraining run; {src.path} is a classifier or a sharded run")
    if enc["name"] != "transformer":
        raise UnlabeledError(f"grow widens transformers; {src.path} holds a {enc['name']} encoder")
    if "eco" in src.config or "forget" in src.config or "unlearning" in src.config.get("method", {}):
        raise UnlabeledError(
            f"grow takes a pretraining run; {src.path} is the output of forget: grow the run it came from"
        )
    if src.method not in TIED_NORMS:
        raise UnlabeledError(f"grow takes runs of {', '.join(TIED_NORMS)}; {src.path} was trained with {src.method}")
    if mode not in MODES:
        raise UnlabeledError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if size not in TRANSFORMER_SIZES:
        raise UnlabeledError(f"unknown size {size!r}; choose from {', '.join(TRANSFORMER_SIZES)}")
    if size == enc["size"]:
        raise UnlabeledError(f"{src.path} is already {size}; grow makes a larger model (--size)")


def grow(
    run: Run | str | os.PathLike[str],
    size: str,
    out: str | os.PathLike[str],
    *,
    mode: str = "fpi",
    overwrite: bool = False,
) -> Run:
    """Grow ``run``'s transformer (and its objective's head) to ``size`` by bert2BERT (Chen et
    al. 2022): ``mode="fpi"`` computes the same function as ``run`` (the test suite checks the
    outputs), ``"aki"`` takes the new units from the next layer. The result at ``out`` is a run
    at step 0 that ``pretrain(data, out2, init=out)`` continues; it records where it grew from
    (``init``), so lineage checks (``forget``) see ``run`` as its ancestor."""
    src = open_run(run)
    _check(src, size, mode)
    out = folder(out)
    refuse_out_at(out, src, "the run it grows", "grow writes a new run elsewhere")
    replace_old = claim_run_dir(out, resume=False, overwrite=overwrite, remove=False, resumable=False)
    config = copy.deepcopy(dict(src.config))
    # the objective's own settings: a self-distilled run's teacher is the small model's, not
    # one for the grown run (pretrain --init OUT --option self_distil=W asks for one again)
    config["method"] = self_distil.split_options(config["method"])[0]
    old_size = config["encoder"]["size"]
    try:
        seed = int(config.get("train", {}).get("seed", 0))  # the copies' shares of their reading weights
        state = grow_state(src.weights(), TRANSFORMER_SIZES[old_size], TRANSFORMER_SIZES[size], src.method, mode, seed)
    except (ValueError, KeyError) as e:  # a weight the mapping does not know: said, not a traceback
        raise UnlabeledError(f"grow {old_size} -> {size}: {e}") from None
    config["encoder"]["size"] = size
    config["init"] = replace(start_point(src), loaded=f"grown from {old_size} ({mode})").to_json()
    config["grown"] = {"from_size": old_size, "size": size, "mode": mode}
    objective, _ = build(RunSpec.from_config(config))
    objective.load_state_dict(state)  # strict: every weight of the larger model is there, of its shape
    if replace_old:  # only now that the grown model is made: a refusal above kept the old run
        remove_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    if (src.path / TRAINING_IDS).exists():
        ckpt.atomic_write_text(out / TRAINING_IDS, (src.path / TRAINING_IDS).read_text())
    ckpt.save_weights(out / ckpt.MODEL_FILE, objective.exported_state(), {"step": "0", "grown_from": str(src.path)})
    ckpt.atomic_write_json(out / "config.json", config)  # last: a folder without it is not a run
    params = sum(p.numel() for p in objective.encoder.parameters()) / 1e6
    info(f"grew {src.path} ({old_size}, step {src.step}) to {size} ({params:.2f}M parameters, {mode}) -> {out}")
    return Run(out)
