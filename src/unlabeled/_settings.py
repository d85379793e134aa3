"""Settings a user passes by name (``--option``, ``--encoder-option``, a curation filter's
threshold), checked against the signature of what takes them before anything runs: an unknown
name lists the known ones, a value of the wrong kind names the setting and its default, and
neither surfaces as a Python error from inside a constructor."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from math import inf
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError


def settable(fn: Callable[..., Any], skip: Iterable[str] = ()) -> dict[str, inspect.Parameter]:
    """The named parameters of ``fn`` a user may set (not ``self``, not ``*args``/``**kwargs``,
    not those in ``skip``)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    skipped = {"self", *skip}
    return {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind in kinds and n not in skipped}


def check_count(value: Any, flag: str, least: int) -> None:
    """``value`` is a whole number (numpy's too, never a bool), ``least`` or more; else one line
    naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise UnlabeledError(f"{flag} must be a whole number, {least} or more; got {value!r}")


def check_positive(value: Any, flag: str) -> None:
    """``value`` is a finite number above 0 (never a bool); else one line naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or not 0 < value < inf:
        raise UnlabeledError(f"{flag} must be a positive number, got {value!r}")


def folder(value: Any, name: str = "out") -> Path:
    """``value`` (a path given as text or ``os.PathLike``) as a Path; anything else (None, a
    number) is an UnlabeledError naming ``name``, not pathlib's TypeError from inside a command."""
    if isinstance(value, bool) or not isinstance(value, str | os.PathLike) or not str(value):
        raise UnlabeledError(f"{name} takes a folder's path (a str or a pathlib.Path), got {value!r}")
    return Path(value)


def as_settings(value: Any, name: str) -> dict[str, Any]:
    """``value`` (settings by name, or None) as a dict; anything else is an UnlabeledError naming
    ``name`` (a list of "key=value" strings passed through the API raised dict()'s own error)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UnlabeledError(f"{name} takes settings by name, a dict such as {{'view_size': 12}}; got {value!r}")
    return dict(value)


def check_kind(flag: str, value: Any, default: Any) -> None:
    """``value`` of the kind ``default`` is: a number for a number, true or false for a flag,
    a list for a list (a default of None takes anything)."""
    number = isinstance(default, int | float) and not isinstance(default, bool)
    if number and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise UnlabeledError(f"{flag} takes a number (its default is {default}), got {value!r}")
    if isinstance(default, bool) and not isinstance(value, bool):
        raise UnlabeledError(f"{flag} takes true or false, got {value!r}")
    if isinstance(default, list | tuple) and not isinstance(value, list | tuple):
        raise UnlabeledError(f"{flag} takes a list (its default is {list(default)}), got {value!r}")


def check_settings(what: str, flag: str, params: dict[str, inspect.Parameter], given: dict[str, Any]) -> None:
    """Every name in ``given`` one of ``params`` and its value of its default's kind; ``what``
    names the thing that takes them in the message, ``flag`` the command-line option."""
    unknown = sorted(set(given) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise UnlabeledError(f"{what} has no setting {', '.join(map(repr, unknown))}; its {flag} settings: {known}")
    for name, value in given.items():
        default, annotation = params[name].default, str(params[name].annotation)
        if default is not inspect.Parameter.empty and "str" not in annotation:  # int | str: "all" too
            check_kind(f"{flag} {name}", value, default)


_KINDS: dict[str, tuple[type, ...]] = {
    "float": (int, float, np.integer, np.floating),
    "int": (int, np.integer),
    "bool": (bool, np.bool_),
    "str": (str,),
}


def check_field_kinds(recipe: Any) -> None:
    """Each field of the dataclass ``recipe`` annotated with plain kinds (``float``, ``int``,
    ``bool``, ``str``, ``| None``) holds a value of one of them: ``fraction="0.5"`` from the
    API is named here, not a TypeError from a comparison deep inside (a bool is no number)."""
    for f in dataclasses.fields(recipe):
        names = [n.strip() for n in str(f.type).split("|")]
        if not all(n in _KINDS or n == "None" for n in names):
            continue  # a container or a class: checked where it is used
        value = getattr(recipe, f.name)
        if value is None and "None" in names:
            continue
        kinds = tuple(k for n in names if n in _KINDS for k in _KINDS[n])
        number = bool(kinds) and bool not in kinds and isinstance(value, bool)
        if isinstance(value, np.generic) and isinstance(value, kinds):  # numpy's numbers, as Python's
            object.__setattr__(recipe, f.name, value.item())
            continue
        if number or not isinstance(value, kinds):
            said = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "text"}
            wanted = " or ".join(said[n] for n in names if n != "None")
            raise UnlabeledError(f"--{f.name.replace('_', '-')} must be {wanted}, got {value!r}")
