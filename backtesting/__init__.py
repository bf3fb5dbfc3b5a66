"""Backtests and parameter optimisation over stored or CSV candles.

A backtest drives the same strategy objects and the same ``PaperBroker`` as the live bots over
historical candles (``engine``), or takes the numpy fast path for vectorised strategies
(``vectorised``) that yields the same trades. Results go to their own tables through
``database.repositories.runs``; ``service`` is the API the dashboard calls, ``jobs`` the workers.
See docs/backtesting.md.
"""
