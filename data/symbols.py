"""Our market names, the same on every venue: ``BTC-USDT`` (spot) and ``BTC-USDT-SWAP`` (the linear perpetual),
OKX's convention; Binance and Bybit run base and quote together (``BTCUSDT``) and tell spot from perpetual by the
endpoint."""

from __future__ import annotations


def split_symbol(symbol: str) -> tuple[str, str, bool]:
    """``(base, quote, perpetual)`` of one of our names; ``ValueError`` for a name that is not ``BASE-QUOTE`` or
    ``BASE-QUOTE-SWAP``."""
    parts = symbol.split("-")
    perpetual = len(parts) == 3 and parts[2] == "SWAP"
    if perpetual:
        parts = parts[:2]
    if len(parts) != 2 or not all(p.isalnum() and p.isupper() for p in parts):
        raise ValueError(f"{symbol!r} is not BASE-QUOTE (spot) or BASE-QUOTE-SWAP (perpetual)")
    return parts[0], parts[1], perpetual
