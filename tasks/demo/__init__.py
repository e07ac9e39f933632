"""Demo tasks: echo, sleep with progress, fail N times, always fail."""

__version__ = "1.0.0"
