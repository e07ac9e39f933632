"""Worker runtimes (``RuntimePort``): where the workers of a task version run.

``process/`` (local supervised processes), ``docker/`` (containers on the project's own engine),
``ecs/`` (Amazon ECS services), ``lambda_/`` (AWS Lambda functions behind the version's SQS queue);
``images/`` builds the worker image that docker and ecs run; ``iam`` writes the least-privilege
policy of an AWS runtime's workers.
The composition root picks one by ``TORNADO_RUNTIME``; see docs/runtimes.md.
"""
