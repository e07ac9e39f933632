"""``python -m cli`` runs the ``tornado`` command."""

from cli.main import main

main()
