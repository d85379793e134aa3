"""The forgetting methods, by name. Adding one is a file here (a :class:`Method`) and a line
in ``METHODS``; ``forget()`` needs no change. The order is the one choices are listed in."""

from __future__ import annotations

from unlabeled.forget.methods.base import Approximate, Method
from unlabeled.forget.methods.finetune import FinetuneMethod
from unlabeled.forget.methods.ga import GAMethod
from unlabeled.forget.methods.laf import LAFMethod
from unlabeled.forget.methods.npo import NPOMethod
from unlabeled.forget.methods.retrain import RetrainMethod
from unlabeled.forget.methods.salun import SalUnMethod
from unlabeled.forget.methods.scrub import SCRUBMethod
from unlabeled.forget.methods.sisa import SISAMethod

METHODS: dict[str, type[Method]] = {
    "retrain": RetrainMethod,
    "sisa": SISAMethod,
    "finetune": FinetuneMethod,
    "ga": GAMethod,
    "npo": NPOMethod,
    "scrub": SCRUBMethod,
    "salun": SalUnMethod,
    "laf": LAFMethod,
}
ENCODER_METHODS = tuple(name for name, method in METHODS.items() if method.encoders)
APPROXIMATE = {name: method for name, method in METHODS.items() if issubclass(method, Approximate)}

__all__ = ["APPROXIMATE", "ENCODER_METHODS", "METHODS", "Method"]
