"""Plugins that fail in each way a plugin can (a test fixture)."""
