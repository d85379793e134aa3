"""``retrain``: exact forgetting, the reference for every other method. The run's own recipe
on the retain set, from the same starting point: a classifier fine-tuned again, an encoder
pretrained again for as many steps as the original took (sharded again if the run was)."""

from __future__ import annotations

from unlabeled.forget.methods.base import Method
from unlabeled.forget.recipe import retrain
from unlabeled.forget.request import ForgetRequest
from unlabeled.runs import Run


class RetrainMethod(Method):
    name = "retrain"
    exact = True
    encoders = True

    def run(self, request: ForgetRequest) -> Run:
        new = retrain(
            request.source,
            request.task,
            request.retain_pos,
            request.out,
            device=request.device,
            overwrite=request.overwrite,
            extra_config={"forget": request.record},
            start=request.start,
        )
        return request.save(new.config)
