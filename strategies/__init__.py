"""Trading strategies: the contract (:mod:`strategies.base`), TA-Lib indicators, the built-ins,
user strategies found by name (:mod:`strategies.registry`) and the guard that isolates user code.

This package imports nothing of ours but :mod:`config`."""
