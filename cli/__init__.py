"""The ``tornado`` command line."""
