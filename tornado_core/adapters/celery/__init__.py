"""The Celery engine: Tornado's queue on a Celery broker, in Celery's task-message protocol (docs/celery.md).

``protocol`` encodes and decodes the messages (``tornado.run`` tasks whose one argument is the
envelope); ``redis_queue`` is the :class:`~tornado_core.ports.queue.QueuePort` on a Redis broker,
its atomic steps the Lua of ``scripts``.
"""
