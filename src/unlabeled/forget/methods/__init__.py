"""The forgetting methods, by name. Adding one is a file here (a :class:`Method`) and a line
in ``METHODS``; ``forget()`` needs no change. The order is the one choices are listed in."""

from __future__ import annotations

from unlabeled._console import UnlabeledError
from unlabeled.forget.methods.base import Approximate, Method
from unlabeled.forget.methods.eco import ECOMethod
from unlabeled.forget.methods.finetune import FinetuneMethod
from unlabeled.forget.methods.ga import GAMethod
from unlabeled.forget.methods.laf import LAFMethod
from unlabeled.forget.methods.lm import (
    GALMMethod,
    GradDiffMethod,
    NPOLMMethod,
    RMUMethod,
    SimNPOMethod,
    WHPMethod,
    is_language_model,
)
from unlabeled.forget.methods.npo import NPOMethod
from unlabeled.forget.methods.retrain import RetrainMethod
from unlabeled.forget.methods.salun import SalUnMethod
from unlabeled.forget.methods.scrub import SCRUBMethod
from unlabeled.forget.methods.sisa import SISAMethod
from unlabeled.forget.methods.ssd import SSDMethod

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
# a causal language model's (methods/lm.py, eco.py, ssd.py, and the shared exact retrain)
LM_METHODS: dict[str, type[Method]] = {
    "ga": GALMMethod,
    "graddiff": GradDiffMethod,
    "npo": NPOLMMethod,
    "simnpo": SimNPOMethod,
    "rmu": RMUMethod,
    "whp": WHPMethod,
    "eco": ECOMethod,
    "ssd": SSDMethod,
    "retrain": RetrainMethod,
}


def lm_method(name: str) -> Method:
    """The language-model method called ``name``."""
    if name not in LM_METHODS:
        raise UnlabeledError(f"a language model forgets with {' | '.join(LM_METHODS)}; got {name!r}")
    return LM_METHODS[name]()


__all__ = ["APPROXIMATE", "ENCODER_METHODS", "LM_METHODS", "METHODS", "Method", "is_language_model", "lm_method"]
