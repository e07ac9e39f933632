"""Workflows: DAGs of steps, each an ordinary job, checked whole and advanced by the scheduler."""
