"""unlabeled: learn from unlabeled data.

import unlabeled as ul
col = ul.open_collection("data/fmnist")
run = ul.pretrain(col, out="runs/a", method="simclr", minutes=10)
result = ul.bench(run, task=col, fractions=[0.01, 0.1, 1.0])
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# ``python -m unlabeled`` (and ``torchrun -m unlabeled``) imports this package before
# ``__main__`` can put the command's Ctrl-C handler in place; Python sets ``sys.argv[0]`` to "-m"
# while it does. A Ctrl-C then is the command's one line and exit code 130, as it is through the
# ``unlabeled`` script (``unlabeled_command.py``); an ordinary ``import unlabeled`` is left to
# raise it.
try:
    from unlabeled._console import UnlabeledError
    from unlabeled._version import __version__
except KeyboardInterrupt:
    if sys.argv[:1] != ["-m"]:
        raise
    sys.stderr.write("interrupted (Ctrl-C)\n")
    raise SystemExit(130) from None

# The API's names are imported on first use (PEP 562): ``import unlabeled`` and the command's
# ``--help`` then cost no PyTorch or scikit-learn (seconds), and the ``unlabeled`` command
# imports only what the command it runs needs. ``from unlabeled import pretrain`` works as usual.
_WHERE = {
    "BenchResult": "unlabeled.bench",
    "bench": "unlabeled.bench",
    "scaling": "unlabeled.bench.scaling",
    "curate": "unlabeled.curate",
    "curate_explain": "unlabeled.curate",
    "Collection": "unlabeled.data",
    "ImportReport": "unlabeled.data",
    "import_source": "unlabeled.data",
    "open_collection": "unlabeled.data",
    "make_authors": "unlabeled.data.authors",
    "forget": "unlabeled.forget",
    "verify": "unlabeled.forget",
    "generate": "unlabeled.lm",
    "perplexity": "unlabeled.lm",
    "Run": "unlabeled.runs",
    "embed": "unlabeled.runs",
    "open_run": "unlabeled.runs",
    "select": "unlabeled.select",
    "distil": "unlabeled.train.distil",
    "finetune": "unlabeled.train.finetune",
    "grow": "unlabeled.train.grow",
    "pretrain": "unlabeled.train.pretrain",
    "selftrain": "unlabeled.train.selftrain",
}

__all__ = [
    "BenchResult",
    "Collection",
    "ImportReport",
    "Run",
    "UnlabeledError",
    "__version__",
    "bench",
    "curate",
    "curate_explain",
    "distil",
    "embed",
    "finetune",
    "forget",
    "generate",
    "grow",
    "import_source",
    "make_authors",
    "open_collection",
    "open_run",
    "perplexity",
    "pretrain",
    "scaling",
    "select",
    "selftrain",
    "verify",
]


class _Package(types.ModuleType):
    """This package, whose API names ``bench``, ``select``, ``forget`` and ``curate`` are also
    its subpackages' names: importing ``unlabeled.bench.jobs`` sets the package's attribute
    ``bench`` to the subpackage, and ``ul.bench(run)`` then called a module. The functions keep
    their names, as when the package imported them eagerly (the subpackages stay importable by
    their dotted names, through ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _WHERE and _WHERE[name] == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'unlabeled' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if TYPE_CHECKING:  # what type checkers and editors see
    from unlabeled.bench import BenchResult, bench
    from unlabeled.bench.scaling import scaling
    from unlabeled.curate import curate, curate_explain
    from unlabeled.data import Collection, ImportReport, import_source, open_collection
    from unlabeled.data.authors import make_authors
    from unlabeled.forget import forget, verify
    from unlabeled.lm import generate, perplexity
    from unlabeled.runs import Run, embed, open_run
    from unlabeled.select import select
    from unlabeled.train.distil import distil
    from unlabeled.train.finetune import finetune
    from unlabeled.train.grow import grow
    from unlabeled.train.pretrain import pretrain
    from unlabeled.train.selftrain import selftrain
