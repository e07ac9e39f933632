"""The process runtime: worker processes on this machine, kept alive by a supervisor."""
