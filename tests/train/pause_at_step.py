"""``python pause_at_step.py STEP ARGS...``: the ``unlabeled`` CLI with ARGS, whose training
loop, when it is about to take step STEP, prints ``PAUSED`` on stdout (rank 0 only) and waits
there until the process is killed. A test reads that line and kills the run at a known point,
mid-run, with no race against the run finishing first; it works under torchrun too.

With ``UNLABELED_TEST_CHECKPOINT_STEPS=N`` in the environment, every Trainer also checkpoints
each N steps (what ``pretrain --checkpoint-steps`` does, for the commands that have no such
option), so that a kill lands a known number of steps after a checkpoint. Checkpoints save the
state; they change nothing a run computes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

from unlabeled.cli import main
from unlabeled.train.trainer import Trainer

PAUSED = "PAUSED"
SCRIPT = str(Path(__file__).resolve())


def wait_until_paused(proc: subprocess.Popen, stderr: Path, hung_after_s: float = 3600) -> None:
    """Block until ``proc`` (started on this script, with ``stdout=PIPE, text=True``) says it
    paused; fail with its ``stderr`` file if it ends first. A guard, not a measure of speed:
    only a run that hangs is killed, after ``hung_after_s`` (an hour: a run starved by other
    work on a busy machine is slow, not hung), so that the test fails instead of waiting forever."""
    watchdog = threading.Timer(hung_after_s, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.strip() == PAUSED:
                return
    finally:
        watchdog.cancel()
    proc.wait()
    raise AssertionError(f"the run ended (exit {proc.returncode}) before pausing:\n{stderr.read_text()}")


def pause_at(step: int) -> None:
    """Make every Trainer block before taking ``step``, after announcing it on stdout."""
    real_step = Trainer._step

    def step_or_pause(self, model, opt, i, total):
        if i == step:
            if self.rank == 0:
                print(PAUSED, flush=True)
            threading.Event().wait()  # until killed
        return real_step(self, model, opt, i, total)

    Trainer._step = step_or_pause


def checkpoint_every(steps: int) -> None:
    """Make every Trainer checkpoint each ``steps`` steps as well."""
    real_init = Trainer.__init__

    def init(self, *args, **kw):
        if "config" in kw:
            kw["config"] = dataclasses.replace(kw["config"], checkpoint_steps=steps)
        else:  # (objective, source, positions, config, ...)
            args = (*args[:3], dataclasses.replace(args[3], checkpoint_steps=steps), *args[4:])
        real_init(self, *args, **kw)

    Trainer.__init__ = init


if __name__ == "__main__":
    if os.environ.get("UNLABELED_TEST_CHECKPOINT_STEPS"):
        checkpoint_every(int(os.environ["UNLABELED_TEST_CHECKPOINT_STEPS"]))
    pause_at(int(sys.argv[1]))
    sys.argv = ["unlabeled", *sys.argv[2:]]
    main()
