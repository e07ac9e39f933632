"""``python -m tornado_cli`` runs the ``tornado`` command."""

from tornado_cli.main import main

main()
