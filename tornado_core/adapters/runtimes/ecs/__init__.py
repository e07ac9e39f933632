"""The ecs runtime: one Amazon ECS service per task version, and task scale-in protection."""
