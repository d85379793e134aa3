"""``sisa``: exact forgetting for runs trained with ``--shards`` (Bourtoule et al. 2021,
"Machine Unlearning"): only the shards that trained on a forgotten sample are retrained, each
with its own recipe on what it keeps; the others are copied."""

from __future__ import annotations

import shutil

from unlabeled._console import info
from unlabeled.forget.methods.base import Method
from unlabeled.forget.recipe import retrain
from unlabeled.forget.request import ForgetRequest
from unlabeled.runs import SHARDS, Run
from unlabeled.train.pretrain import claim_run_dir
from unlabeled.train.spec import ids_hash


class SISAMethod(Method):
    name = "sisa"
    exact = True
    encoders = True
    sharded_only = True

    def run(self, request: ForgetRequest) -> Run:
        src, task = request.source, request.task
        forgotten = set(request.forgotten_ids)
        claim_run_dir(request.out, False, request.overwrite, resumable=False)
        affected = []
        for shard in src.shards():
            ids = shard.training_ids()
            dest = request.out / SHARDS / shard.path.name
            # with a retrained ancestor (--ancestors retrain) every shard starts again from it: a
            # shard copied as it was was still fine-tuned from the encoder that saw the samples
            if forgotten.intersection(ids) or request.start is not None:
                keep = task.positions([i for i in ids if i not in forgotten])
                retrain(shard, task, keep, dest, device=request.device, overwrite=True, start=request.start)
                affected.append(shard.path.name)
            else:
                shutil.copytree(shard.path, dest, dirs_exist_ok=True)
        info(f"sisa: retrained {len(affected)} of {src.config['sisa']['shards']} shards")
        return request.save(_top_config(src, Run(request.out / SHARDS / "00"), request, affected))


def _top_config(src: Run, first: Run, request: ForgetRequest, affected: list[str]) -> dict:
    """The result's own ``config.json``: as a sharded run's is made (``train_shards``), from its
    first shard's, which a retrained shard changes: the normalisation fitted without the
    forgotten samples (or the retrained ancestor's) and where it started (``init``, and
    ``source_run``, which the lineage and a later ``retrain`` read: it named the encoder that saw
    the samples after ``--ancestors retrain`` had replaced it, so a second exact request
    fine-tuned from that one again), so that nothing the run reads still comes from what it
    forgot; the training set is what it keeps."""
    config = {**src.config, "sisa": {**src.config["sisa"], "retrained_shards": affected}}
    for key in ("modality", "init", "source_run"):
        if key in first.config:
            config[key] = first.config[key]
        else:
            config.pop(key, None)
    kept = request.task.ids[request.retain_pos]
    config["data"] = {**config["data"], "samples": len(kept), "ids": ids_hash(kept)}
    if "task" in config:
        config["task"] = {**config["task"], "samples": len(kept)}
    return config
