"""``python -m giqa.cli`` runs the ``giqa`` command (what ``torchrun -m giqa.cli train ...`` launches)."""

from giqa.cli import main

main()
