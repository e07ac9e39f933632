"""The task developer's toolchain: ``tornado newtask`` scaffolding, the pipeline that Jenkins
runs, the pytest plugin and in-memory services for a task's unit tests.
"""
