"""Shared terminal output: one rich console, one progress-bar factory, one error type."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False, soft_wrap=True)


class UnlabeledError(Exception):
    """An error caused by the user's input; the CLI prints its message and exits non-zero."""


def short_reason(e: BaseException) -> str:
    """One line of an exception's message for an error line: its first line that says something
    (not a heading such as ``Error(s) in loading state_dict for X:``), or the exception's type."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = [line for line in lines if not line.endswith(":")]
    return (detail or lines or [type(e).__name__])[0]


def not_utf8(e: UnicodeDecodeError) -> str:
    """How an error line names bytes that are not UTF-8: the first bad byte and its offset."""
    return f"not UTF-8 text (byte {e.object[e.start]:#x} at offset {e.start})"


def unencodable(e: UnicodeEncodeError) -> str | None:
    """What stopped a string's UTF-8 encoding, for an error line: "byte 0xe9 at character 3"
    (a byte that was not UTF-8, read as a surrogate by Python's file-name and argument
    decoding), "a lone surrogate '\\ud800' at character 0" (JSON's escape), or None where the
    error was not about a string."""
    if not isinstance(e.object, str):
        return None
    char = e.object[e.start]
    what = f"byte {ord(char) - 0xDC00:#x}" if 0xDC80 <= ord(char) <= 0xDCFF else f"a lone surrogate {char!r}"
    return f"{what} at character {e.start}"


def samples_of(modality: str, shape: tuple[int, ...] | list[int]) -> str:
    """How a message names what a collection or run holds: "image samples of shape 1x28x28", or
    "text documents" (a document has no shape)."""
    if modality == "text":
        return "text documents"
    return f"{modality} samples of shape {'x'.join(map(str, shape))}"


def quiet() -> bool:
    """True when progress bars should stay off (non-rank-0 processes, UNLABELED_QUIET=1)."""
    return os.environ.get("UNLABELED_QUIET") == "1" or int(os.environ.get("RANK", "0")) != 0


def progress(*extra: TextColumn) -> Progress:
    """A progress bar with count, elapsed and remaining time, plus any extra columns (on a
    terminal only)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("<"),
        TimeRemainingColumn(),
        console=console,
        # off where stderr is no terminal (a pipe, a log file): a bar cannot redraw there, and
        # each one left only empty lines behind, before an error line too
        disable=quiet() or not console.is_terminal,
    )


def info(message: str) -> None:
    """A status line, printed by rank 0 only."""
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(message)


def warn(message: str) -> None:
    """A warning line, printed by rank 0 only."""
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(f"[yellow]warning:[/] {message}")
