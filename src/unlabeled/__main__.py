"""``python -m unlabeled`` (what ``torchrun -m unlabeled`` runs)."""

from unlabeled.cli import main

main()
