"""A plugin that adds an endpoint and a command through Tornado's doors (a test fixture)."""
