"""The relearning attack: does forgotten knowledge come back when the model is taught a little
of it again? (Hu et al. 2024, "Jogging the Memory of Unlearned LLMs Through Targeted Relearning
Attacks"; Lynch et al. 2024, "Eight Methods to Evaluate Robust Unlearning in LLMs".)

Each model is fine-tuned briefly on half of the forgotten authors' facts (the first half of
``make-authors``' ten) and then asked the other half, which it is not shown again. A model that
never read the authors (the retrained one) cannot answer them; one whose knowledge was only
suppressed gets the untaught facts back with the taught ones; one from which it was removed
does not. ``relearn_recovery`` places each model between the two:

    recovery = (P(model) - P(retrain)) / (P(original) - P(retrain))

where ``P`` is the per-token probability of the untaught facts' answers after relearning: 0 is
removal (as the retrained model), 1 is suppression (as much back as the original keeps through
the same relearning, which also disturbs what it knew). Every model relearns the same documents
with the same steps (about 20), learning rate and seed (the original's fine-tuning rate), so the attack is
the same for all; the relearned models are written to ``WORK/<name>`` for inspection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unlabeled._console import UnlabeledError, warn
from unlabeled.data.authors import FACTS
from unlabeled.data.collection import Collection, derive_collection
from unlabeled.forget.lm_metrics import answer_probability, qa_rows
from unlabeled.runs import Run

STEPS, BATCH = 20, 16  # the attack's budget, whatever the split's size (set before any run, not tuned)
TAUGHT = frozenset(f.name for f in FACTS[: len(FACTS) // 2])
RELEARN = "relearn"  # the folder, inside the unlearned run, of the relearned models
RELEARN_METRICS = ("relearn_probability", "relearn_recovery")


def split_facts(task: Collection, forget: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The forget positions of the taught facts, and those of the rest (asked afterwards)."""
    if "fact" not in task.columns:
        raise UnlabeledError(f"{task.path} has no fact column: the relearning attack needs a make-authors benchmark")
    taught = np.isin(task.column("fact")[forget], sorted(TAUGHT))
    return forget[taught], forget[~taught]


def relearning(
    runs: dict[str, Run], task: Collection, forget: np.ndarray, work: Path, reference: str = "retrain"
) -> dict[str, dict[str, float]]:
    """Each run's ``relearn_probability`` and ``relearn_recovery`` (see the module docstring);
    ``runs`` holds ``"original"`` and the ``reference`` (retrained) run."""
    from unlabeled.train.pretrain import pretrain

    taught, asked = split_facts(task, forget)
    if not len(taught) or not len(asked):
        raise UnlabeledError("the relearning attack needs forgotten documents of both halves of the facts")
    sub = derive_collection(task, taught, work / "taught", {"name": "relearn"}, overwrite=True)
    rows = qa_rows(task, asked)
    lr = float(runs["original"].config["train"]["lr"])
    relearned = {}
    batch = min(BATCH, len(taught))
    for name, run in runs.items():
        r = pretrain(
            sub, work / name, method="clm", init=run, epochs=STEPS * batch / len(taught), batch_size=batch, lr=lr,
            precision="fp32",
            overwrite=True,
        )  # fmt: skip
        relearned[name] = float(answer_probability(r.encoder().eval(), r.modality(), rows).mean())
    floor = relearned[reference]
    scale = relearned["original"] - floor
    if scale <= 0:  # the original gets no more back than a model that never read the authors
        warn(
            f"relearning: the original model ({relearned['original']:.4g}) recovers no more of the untaught facts "
            f"than the retrained one ({floor:.4g}); relearn_recovery is undefined (nan)"
        )
    elif scale < 0.1 * relearned["original"]:
        warn(
            f"relearning: the original and the retrained model recover the untaught facts almost alike "
            f"({relearned['original']:.4g} against {floor:.4g}); relearn_recovery divides by their difference "
            "and is mostly noise here (a larger benchmark or longer training separates them)"
        )
    recovery = {name: (p - floor) / scale if scale > 0 else float("nan") for name, p in relearned.items()}
    return {name: {"relearn_probability": p, "relearn_recovery": recovery[name]} for name, p in relearned.items()}
