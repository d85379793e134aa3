"""The ``unlabeled`` command's entry point. It lives outside the ``unlabeled`` package on
purpose: importing the command (typer and rich; each command imports PyTorch, scikit-learn and
the rest when it runs) takes a moment, and a Ctrl-C during it would print Python's traceback
before the command's own handler (:func:`unlabeled.cli.main`) is in place. Here the import itself
is inside the handler."""

from __future__ import annotations

import sys


def main() -> None:
    """Import the command, then run it; Ctrl-C while importing is one line and exit code 130,
    as it is later."""
    try:
        from unlabeled.cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted (Ctrl-C)\n")
        raise SystemExit(130) from None
    command()
