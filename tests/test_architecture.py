"""The shape of the code, checked: layers that only look down (no import cycle), one training
loop, functions short enough to read at once (issue 22)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import unlabeled

SRC = Path(unlabeled.__file__).parent
MAX_LINES = 80
MAX_PARAMS = 8
# public API entry points may take many keyword-only options (they build a spec at once)
ENTRY_POINTS = {
    "pretrain",
    "finetune",
    "distil",
    "selftrain",
    "bench",
    "select",
    "curate",
    "forget",
    "scaling",
    "import_source",
    "demo",
    "evaluate",  # the label-efficiency protocol's public call (benchmark scripts call it positionally)
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The unlabeled modules ``name`` imports anywhere: at module level or inside a function (a
    function-local import hides a cycle; it does not remove it)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles, state = [], dict.fromkeys(graph, 0)  # 0 unseen, 1 on the stack, 2 done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif state[nxt] == 0:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if state[name] == 0:
            walk(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_one_training_loop():
    """Only the Trainer steps an optimiser: every other training goes through it."""
    steppers = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(s in p.read_text() for s in (".backward()", "opt.step()", "optimizer.step()"))
    ]
    assert steppers == ["train/trainer.py"]


def test_functions_are_short_and_take_few_parameters():
    too_long, too_many = [], []
    for path in SRC.rglob("*.py"):
        rel = str(path.relative_to(SRC))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES:
                too_long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
            n = len([p for p in params if p.arg not in ("self", "cls")]) + bool(a.vararg) + bool(a.kwarg)
            exempt = rel == "cli.py" or node.name == "__init__" or node.name in ENTRY_POINTS
            if n > MAX_PARAMS and not exempt:
                too_many.append(f"{rel}:{node.lineno} {node.name} ({n} parameters)")
    assert not too_long, "functions over 80 lines:\n" + "\n".join(sorted(too_long))
    assert not too_many, "functions with more than 8 parameters:\n" + "\n".join(sorted(too_many))
