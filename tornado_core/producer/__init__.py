"""The producer path: a submitted job prepared, sent to its queue and recorded as queued.

``submission`` validates and routes a job and builds its message; ``batching`` micro-batches
queue sends; ``recording`` writes the job store's ``queued`` rows behind the answer. The HTTP
API (``tornado_core.web``) drives them; release smoke jobs use ``submission`` directly.
"""
