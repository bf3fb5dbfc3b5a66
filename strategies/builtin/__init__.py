"""The built-in strategies, by name."""

from __future__ import annotations

from strategies.base import BaseStrategy
from strategies.builtin.bollinger import Bollinger
from strategies.builtin.donchian_breakout import DonchianBreakout
from strategies.builtin.ema_cross import EmaCross
from strategies.builtin.funding_contrarian import FundingContrarian
from strategies.builtin.macd_cross import MacdCross
from strategies.builtin.rsi_reversion import RsiReversion
from strategies.builtin.sma_cross import SmaCross

BUILTIN: tuple[type[BaseStrategy], ...] = (
    SmaCross, EmaCross, RsiReversion, MacdCross, Bollinger, DonchianBreakout, FundingContrarian,
)
