"""One module per page: ``PATH``, ``TITLE``, ``layout(context)`` and ``register(app, context)``."""
