"""Worker runtimes (``RuntimePort``): where the workers of a task version run.

``process/`` (local supervised processes), ``docker/`` (containers on the project's own engine),
``ecs/`` (Amazon ECS services); ``images/`` builds the worker image that docker and ecs run.
The composition root picks one by ``TORNADO_RUNTIME``; see docs/runtimes.md.
"""
