"""Every bus channel name, in one place. Publishers and subscribers both build names here.

Channels (without the optional ``REDIS_PREFIX``):

* ``candles.<exchange>.<symbol>.<timeframe>``         closed candles (final, or revised by a late trade)
* ``candle_updates.<exchange>.<symbol>.<timeframe>``  the forming candle, throttled
* ``books.<exchange>.<symbol>``                       the best levels of a live order book, throttled
* ``funding.<exchange>.<symbol>``                     a perpetual's funding rate as reported
* ``open_interest.<exchange>.<symbol>``               open interest
* ``liquidations.<exchange>.<symbol>``                forced orders
* ``signals.<exchange>.<symbol>.<timeframe>``         strategy signals
* ``fills.<bot>``                                     paper fills of one bot
* ``bot_events.<bot>``                                bot lifecycle and risk events
* ``health.<component>``                              health reports
"""

from __future__ import annotations

from config.domain import Timeframe

CANDLES = "candles"
CANDLE_UPDATES = "candle_updates"
BOOKS = "books"
FUNDING = "funding"
OPEN_INTEREST = "open_interest"
LIQUIDATIONS = "liquidations"
SIGNALS = "signals"
FILLS = "fills"
BOT_EVENTS = "bot_events"
HEALTH = "health"


def candles(exchange: str, symbol: str, timeframe: Timeframe | str) -> str:
    return f"{CANDLES}.{exchange}.{symbol}.{Timeframe(timeframe).value}"


def candle_updates(exchange: str, symbol: str, timeframe: Timeframe | str) -> str:
    return f"{CANDLE_UPDATES}.{exchange}.{symbol}.{Timeframe(timeframe).value}"


def books(exchange: str, symbol: str) -> str:
    return f"{BOOKS}.{exchange}.{symbol}"


def market_state(kind: str, exchange: str, symbol: str) -> str:
    """``funding``, ``open_interest`` or ``liquidations`` of one market."""
    if kind not in (FUNDING, OPEN_INTEREST, LIQUIDATIONS):
        raise ValueError(f"not a market-state channel family: {kind!r}")
    return f"{kind}.{exchange}.{symbol}"


def signals(exchange: str, symbol: str, timeframe: Timeframe | str) -> str:
    return f"{SIGNALS}.{exchange}.{symbol}.{Timeframe(timeframe).value}"


def fills(bot_name: str) -> str:
    return f"{FILLS}.{bot_name}"


def bot_events(bot_name: str) -> str:
    return f"{BOT_EVENTS}.{bot_name}"


def health(component: str) -> str:
    return f"{HEALTH}.{component}"


def pattern(kind: str, exchange: str = "*", symbol: str = "*", timeframe: str = "*") -> str:
    """Glob pattern over a family, e.g. ``pattern(CANDLES)`` = ``candles.*.*.*``."""
    return f"{kind}.{exchange}.{symbol}.{timeframe}"


def all_of(kind: str) -> str:
    """Glob pattern for every channel of a family (``fills.*``, ``health.*``)."""
    return f"{kind}.*"
