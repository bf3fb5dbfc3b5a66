"""User strategies shipped with the project (loaded by path by strategies.registry, not imported)."""
