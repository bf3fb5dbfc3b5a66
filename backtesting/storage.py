"""Backtest results in the database: a run row from a spec, its trades, signals and equity curve.

Everything needed to reproduce a run is in ``strategy_runs.settings``: the full spec (bot
configuration, data source, period, path) and the SHA-256 of the candles it ran on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backtesting.data import CandleData
from backtesting.result import BacktestResult, downsample_curve
from backtesting.spec import BacktestSpec
from config.domain import ms_to_datetime
from database.models import StrategyRun
from database.repositories import runs
from database.repositories.runs import RunStatus

ENGINE_VERSION = 1
SIGNAL_NAMES = {1: "BUY", -1: "SELL"}


def create_backtest_run(session: Session, spec: BacktestSpec, *, kind: str = "backtest", name: str | None = None,
                        parent_id: int | None = None, status: RunStatus = RunStatus.QUEUED,
                        extra_settings: dict[str, Any] | None = None) -> int:
    """A ``strategy_runs`` row describing ``spec`` (queued for a worker by default)."""
    bot = spec.bot
    settings = {"spec": spec.to_json(), "account": account_summary(spec), "engine_version": ENGINE_VERSION,
                **(extra_settings or {})}
    return runs.create_run(
        session, kind=kind, name=name, strategy=bot.strategy, params=dict(bot.params), settings=settings,
        exchange=bot.exchange, symbol=bot.symbol, timeframe=bot.timeframe.value,
        start_time=None if spec.start_ms is None else ms_to_datetime(spec.start_ms),
        end_time=None if spec.end_ms is None else ms_to_datetime(spec.end_ms),
        data_source=spec.data_file or "database", parent_id=parent_id, status=status,
    )


def account_summary(spec: BacktestSpec) -> dict[str, Any]:
    """The account settings a run list shows (the full bot configuration is in ``spec``)."""
    bot = spec.bot
    return {"starting_balance": float(bot.starting_balance), "taker_fee_pct": bot.fees.taker_pct,
            "maker_fee_pct": bot.fees.maker_pct, "slippage": bot.slippage.model_dump(mode="json"),
            "sizing": bot.sizing.model_dump(mode="json"), "direction": bot.direction.value,
            "leverage": bot.leverage, "risk": bot.risk.model_dump(mode="json")}


def spec_of(run: StrategyRun) -> BacktestSpec:
    """The spec a run was created from (what a re-run needs)."""
    return BacktestSpec.from_json(run.settings["spec"])


def store_result(session: Session, run_id: int, result: BacktestResult, data: CandleData, *,
                 score: float | None = None, with_trades: bool = True, with_signals: bool = True) -> None:
    """Trades, signal events, metrics and the downsampled equity curve of a finished run."""
    if with_trades:
        runs.add_trades(session, run_id, trade_rows(result))
    if with_signals and result.signal_bars.size:
        closes = data.close[result.signal_bars]
        times = data.open_time[result.signal_bars]
        runs.add_signals(session, run_id, (
            {"candle_time": ms_to_datetime(int(t)), "signal_type": SIGNAL_NAMES[int(code)], "price": float(price)}
            for t, code, price in zip(times, result.signal_values, closes, strict=True)
        ))
    runs.finish_run(session, run_id, metrics=result.metrics, score=score,
                    equity_curve=downsample_curve(result.times, result.equity),
                    settings_update={"data_fingerprint": data.fingerprint(), "data_rows": len(data)})


def trade_rows(result: BacktestResult) -> list[dict[str, Any]]:
    rows = []
    for t in result.trades.records():
        rows.append({
            "side": t.side, "entry_time": ms_to_datetime(t.entry_time_ms),
            "exit_time": None if t.exit_time_ms is None else ms_to_datetime(t.exit_time_ms),
            "entry_price": t.entry_price, "exit_price": t.exit_price, "quantity": t.size, "fees": t.fees,
            "pnl": t.pnl, "return_pct": t.return_pct, "exit_reason": t.exit_reason,
            "entry_bar": t.entry_bar, "exit_bar": t.exit_bar,
        })
    return rows
