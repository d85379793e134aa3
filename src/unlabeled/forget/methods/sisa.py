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
            if forgotten.intersection(ids):
                keep = task.positions([i for i in ids if i not in forgotten])
                retrain(shard, task, keep, dest, device=request.device, overwrite=True, start=request.start)
                affected.append(shard.path.name)
            else:
                shutil.copytree(shard.path, dest, dirs_exist_ok=True)
        info(f"sisa: retrained {len(affected)} of {src.config['sisa']['shards']} shards")
        return request.save({**src.config, "sisa": {**src.config["sisa"], "retrained_shards": affected}})
