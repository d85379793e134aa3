"""``python -m unlabeled`` (what ``torchrun -m unlabeled`` runs)."""

import sys

try:  # a Ctrl-C while the command is still importing is its one line, as later
    from unlabeled.cli import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted (Ctrl-C)\n")
    raise SystemExit(130) from None

main()
