"""Built-in ERP task packages, each found through the ``tornado.tasks`` entry points."""
