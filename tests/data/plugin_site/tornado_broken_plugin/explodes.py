"""Fails on import, as a plugin with a missing dependency would."""

raise RuntimeError("the hello database driver is not installed")
