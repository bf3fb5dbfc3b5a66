"""Operations: Prometheus metrics, alerts and notifiers, and the system-event log handler.

Import the submodule you need (``data.ops.metrics`` is light; ``data.ops.notifier`` pulls in aiohttp):

* :mod:`data.ops.metrics`   every metric, ``record_*``/``set_*``/``observe_*`` helpers, ``start_metrics_server``
* :mod:`data.ops.alerts`    ``Alert``, ``Severity``, ``AlertKind``, the pure ``AlertRules``
* :mod:`data.ops.notifier`  ``TelegramNotifier``, ``WebhookNotifier``, ``LogNotifier``, ``MultiNotifier``,
  ``notifier_from_settings``
* :mod:`data.ops.event_log` ``install_system_event_handler`` (WARNING+ and marked records -> ``system_events``)
* :mod:`data.ops.runtime`   ``start_operations``: all of the above for one process, from Settings
"""
