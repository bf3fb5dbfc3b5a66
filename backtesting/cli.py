"""``python main.py backtest | optimize | worker`` (see docs/backtesting.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from config.domain import Timeframe
from config.errors import ConfigurationError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    backtest = _add(subparsers, "backtest", "backtest a strategy on stored candles or a CSV file")
    _add_run_options(backtest)
    backtest.add_argument("--json", action="store_true", help="print one JSON object with metrics and trades")
    backtest.add_argument("--store", action="store_true", help="also store the run in the database")
    backtest.add_argument("--submit", action="store_true", help="queue the run for a worker and print its id")
    backtest.set_defaults(func=_backtest)

    optimize = _add(subparsers, "optimize", "optimise strategy parameters (grid, Optuna, walk-forward)")
    _add_run_options(optimize)
    optimize.add_argument("--method", choices=("grid", "optuna"), default="grid")
    optimize.add_argument("--grid", action="append", default=[], metavar="NAME=VALUES",
                          help="grid values: fast=5:50:5 (inclusive range with step) or slow=20,30,40")
    optimize.add_argument("--space", action="append", default=[], metavar="NAME=RANGE",
                          help="Optuna range: fast=5:50 or fast=5:50:5 (step) or kind=a,b (choices)")
    optimize.add_argument("--trials", type=int, default=50, help="Optuna trials (per walk-forward window)")
    optimize.add_argument("--objective", default="sharpe",
                          help="sharpe, sortino, calmar, total_return, annualised_return, profit_factor, "
                               "win_rate, expectancy, final_equity, max_drawdown (minimised)")
    optimize.add_argument("--min-trades", type=int, default=1, help="trials with fewer trades score nothing")
    optimize.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    optimize.add_argument("--seed", type=int, default=None, help="Optuna sampler seed")
    optimize.add_argument("--optuna-storage", default=None,
                          help="Optuna RDB URL (postgresql://…) shared by several machines")
    optimize.add_argument("--study-name", default=None, help="Optuna study to create or join")
    optimize.add_argument("--walk-forward", action="store_true", help="walk-forward optimisation")
    optimize.add_argument("--in-sample-bars", type=int, default=None)
    optimize.add_argument("--out-of-sample-bars", type=int, default=None)
    optimize.add_argument("--anchored", action="store_true", help="in-sample windows all start at the beginning")
    optimize.add_argument("--export-bot", type=Path, default=None, metavar="FILE",
                          help="write the best parameters as a bot JSON file")
    optimize.add_argument("--bot-name", default=None, help="name of the exported bot")
    optimize.add_argument("--json", action="store_true", help="print the result as one JSON object")
    optimize.add_argument("--submit", action="store_true", help="queue the optimisation for a worker")
    optimize.set_defaults(func=_optimize)

    worker = _add(subparsers, "worker", "run queued backtests and optimisations from the database")
    worker.add_argument("--jobs", type=int, default=1, help="runs executed at the same time")
    worker.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the queue")
    worker.add_argument("--once", action="store_true", help="run what is queued now, then exit")
    worker.set_defaults(func=_worker)


def _add(subparsers: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=text, description=text)

    def one_line_error(message: str) -> NoReturn:
        print(f"error: {name}: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = one_line_error  # type: ignore[method-assign]
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strategy", help="strategy name (python main.py strategies lists them)")
    parser.add_argument("--params", default="{}", help='strategy parameters as JSON, e.g. \'{"fast": 10}\'')
    parser.add_argument("--exchange", default="okx")
    parser.add_argument("--symbol", help="instrument of the stored candles, e.g. BTC-USDT")
    parser.add_argument("--timeframe", default="1m", help="1m, 5m, 15m, 30m, 1h, 4h, 1d")
    parser.add_argument("--start", help="first traded candle: YYYY-MM-DD, ISO time (UTC) or epoch ms")
    parser.add_argument("--end", help="end of the period (exclusive), same formats")
    parser.add_argument("--data-file", help="CSV candles instead of the database")
    parser.add_argument("--funding-file", help="CSV of funding settlements (ts_ms, funding_rate): open positions "
                                               "pay or receive them (perpetual swaps)")
    parser.add_argument("--funding-db", action="store_true",
                        help="the funding settlements stored by the collector (funding_rates) of the market")
    parser.add_argument("--bot-config", type=Path, help="take the account and risk settings from a bot file")
    parser.add_argument("--cash", type=float, default=10_000.0, help="starting balance (quote currency)")
    parser.add_argument("--fee", type=float, default=0.001, help="fee per fill as a fraction (0.001 = 0.1%%)")
    parser.add_argument("--slippage-bps", type=float, default=0.0, help="slippage per market fill, basis points")
    parser.add_argument("--size-fraction", type=float, default=1.0, help="share of equity per entry (1.0 = all)")
    parser.add_argument("--size-at", choices=("signal_close", "fill"), default="signal_close",
                        help="size entries at the signal candle's close (default) or spend the share at the fill")
    parser.add_argument("--short", action="store_true",
                        help="long/short: SELL from flat enters short, an opposite signal stops and reverses")
    parser.add_argument("--leverage", type=float, default=1.0)
    parser.add_argument("--stop-loss-pct", type=float, default=None)
    parser.add_argument("--take-profit-pct", type=float, default=None)
    parser.add_argument("--trailing-stop-pct", type=float, default=None)
    parser.add_argument("--path", choices=("auto", "bar", "vectorised"), default="auto",
                        help="engine: vectorised fast path when possible (auto), or force one")
    parser.add_argument("--close-at-end", action="store_true", help="close an open position at the last close")


def parse_time(text: str, flag: str) -> datetime:
    """``YYYY-MM-DD``, an ISO 8601 time (naive = UTC) or epoch milliseconds."""
    value = text.strip()
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"cannot read {text!r} as a date; expected YYYY-MM-DD, an ISO 8601 time or "
                                 "epoch milliseconds", field=flag) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_arg(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"invalid JSON ({exc.msg}); expected an object like '{{\"fast\": 10}}'",
                                 field=flag) from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"expected a JSON object, got {type(value).__name__}", field=flag)
    return value


def build_request(args: argparse.Namespace) -> Any:
    """The :class:`~backtesting.service.BacktestRequest` the run options describe."""
    from backtesting.service import BacktestRequest
    from bot_manager.config import load_bot_file

    bot = load_bot_file(args.bot_config) if args.bot_config else None
    if not args.data_file:
        missing = [flag for flag, value in (("--symbol", args.symbol or (bot and bot.symbol)),
                                            ("--start", args.start), ("--end", args.end)) if not value]
        if missing:
            raise ConfigurationError(f"missing {', '.join(missing)}; stored candles need --symbol, --start and "
                                     "--end (or give --data-file CSV)", field=missing[0])
    if not args.strategy and bot is None:
        raise ConfigurationError("missing --strategy (python main.py strategies lists them)", field="--strategy")
    try:
        timeframe = Timeframe.parse(args.timeframe)
    except ValueError as exc:
        raise ConfigurationError(str(exc), field="--timeframe") from None
    values = {
        "strategy": args.strategy, "params": _json_arg(args.params, "--params"), "exchange": args.exchange,
        "symbol": args.symbol, "timeframe": timeframe, "data_file": args.data_file, "bot": bot,
        "funding_file": args.funding_file, "funding_db": args.funding_db,
        "start": parse_time(args.start, "--start") if args.start else None,
        "end": parse_time(args.end, "--end") if args.end else None,
        "cash": args.cash, "fee": args.fee, "slippage_bps": args.slippage_bps, "size_fraction": args.size_fraction,
        "size_at": args.size_at,
        "allow_short": args.short, "leverage": args.leverage, "stop_loss_pct": args.stop_loss_pct,
        "take_profit_pct": args.take_profit_pct, "trailing_stop_pct": args.trailing_stop_pct,
        "path": args.path, "close_at_end": args.close_at_end,
    }
    return _validated(BacktestRequest, values, "backtest options")


def _validated(model: Any, values: dict[str, Any], source: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "--" + "-".join(str(p) for p in first["loc"]).replace("_", "-")
        raise ConfigurationError(f"{str(first['msg']).removeprefix('Value error, ')} "
                                 f"(received {first.get('input')!r})", source=source, field=field) from None


def _session_factory() -> Any:
    from config.settings import get_settings
    from database.engine import make_engine, make_session_factory

    return make_session_factory(make_engine(get_settings().effective_database_url))


def _backtest(args: argparse.Namespace) -> int:
    from backtesting.runner import load_data, run_backtest
    from backtesting.storage import create_backtest_run, store_result
    from database.engine import session_scope
    from database.repositories.runs import RunStatus

    spec = build_request(args).to_spec()
    if args.submit:
        with session_scope(_session_factory()) as session:
            run_id = create_backtest_run(session, spec)
        print(json.dumps({"run_id": run_id, "status": "queued"}) if args.json else f"queued run {run_id}")
        return 0
    factory = _session_factory() if (args.store or not spec.data_file) else None
    if factory is None:
        prepared = load_data(spec)
    else:
        with session_scope(factory) as session:
            prepared = load_data(spec, session)
    result = run_backtest(spec, prepared)
    output = result.to_json()
    if args.store and factory is not None:
        with session_scope(factory) as session:
            run_id = create_backtest_run(session, spec, status=RunStatus.RUNNING)
            store_result(session, run_id, result, prepared.data)
        output["run_id"] = run_id
    if args.json:
        print(json.dumps(output, default=str))
    else:
        _print_summary(output)
    return 0


def _print_summary(output: dict[str, Any]) -> None:
    metrics = output["metrics"]
    for key, value in metrics.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"{key:<28} {shown}")
    if "run_id" in output:
        print(f"{'run_id':<28} {output['run_id']}")


def parse_grid_item(item: str, flag: str = "--grid") -> tuple[str, list[Any]]:
    """``name=a:b:step`` (inclusive) or ``name=v1,v2`` into a name and its values."""
    name, values = _split_item(item, flag)
    if ":" in values:
        parts = [_number(p, item, flag) for p in values.split(":")]
        if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
            raise ConfigurationError(f"expected {name}=low:high:step with step > 0, got {item!r}", field=flag)
        low, high, step = parts
        count = int((high - low) / step + 1e-9) + 1
        points = [low + i * step for i in range(count)]
        if all(isinstance(p, int) for p in parts):
            return name, [int(p) for p in points]
        return name, [round(float(p), 12) for p in points]
    return name, [_scalar(v) for v in values.split(",") if v.strip()]


def parse_space_item(item: str) -> tuple[str, dict[str, Any]]:
    """``name=low:high[:step]`` or ``name=a,b`` into an Optuna dimension."""
    name, values = _split_item(item, "--space")
    if ":" in values:
        parts = [_number(p, item, "--space") for p in values.split(":")]
        if len(parts) not in (2, 3):
            raise ConfigurationError(f"expected {name}=low:high or low:high:step, got {item!r}", field="--space")
        return name, {"low": parts[0], "high": parts[1], "step": parts[2] if len(parts) == 3 else None}
    return name, {"choices": [_scalar(v) for v in values.split(",") if v.strip()]}


def _split_item(item: str, flag: str) -> tuple[str, str]:
    name, sep, values = item.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigurationError(f"expected NAME=VALUES, got {item!r}", field=flag)
    return name.strip(), values.strip()


def _number(text: str, item: str, flag: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ConfigurationError(f"{text!r} in {item!r} is not a number", field=flag) from None


def _scalar(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_search(args: argparse.Namespace) -> Any:
    from backtesting.search import OptimisationSpec

    walk = None
    if args.walk_forward:
        if args.in_sample_bars is None or args.out_of_sample_bars is None:
            raise ConfigurationError("--walk-forward needs --in-sample-bars and --out-of-sample-bars",
                                     field="--walk-forward")
        walk = {"in_sample_bars": args.in_sample_bars, "out_of_sample_bars": args.out_of_sample_bars,
                "anchored": args.anchored}
    values = {
        "method": args.method, "grid": dict(parse_grid_item(i) for i in args.grid),
        "space": dict(parse_space_item(i) for i in args.space), "trials": args.trials,
        "objective": args.objective, "min_trades": args.min_trades, "workers": args.workers, "seed": args.seed,
        "optuna_storage": args.optuna_storage, "study_name": args.study_name, "walk_forward": walk,
    }
    return _validated(OptimisationSpec, values, "optimize options")


def _optimize(args: argparse.Namespace) -> int:
    from backtesting.jobs import run_inline
    from backtesting.optimise import create_optimisation_run
    from backtesting.service import RunView
    from database.engine import session_scope
    from database.repositories import runs
    from database.repositories.runs import RunStatus

    request = build_request(args)
    search = build_search(args)
    spec = request.to_spec()
    factory = _session_factory()
    status = RunStatus.QUEUED if args.submit else RunStatus.RUNNING
    with session_scope(factory) as session:
        run_id = create_optimisation_run(session, spec, search, status=status)
    if args.submit:
        print(json.dumps({"run_id": run_id, "status": "queued"}) if args.json else f"queued run {run_id}")
        return 0
    try:
        run_inline(factory, run_id)
    except KeyboardInterrupt:
        with session_scope(factory) as session:
            runs.mark_cancelled(session, run_id)
        raise
    with session_scope(factory) as session:
        run = runs.get_run(session, run_id)
        assert run is not None
        view = RunView.of(run)
    if view.status != RunStatus.DONE.value:
        print(f"error: optimisation run {run_id} {view.status}: {view.error}", file=sys.stderr)
        return 1
    output = {"run_id": run_id, **view.metrics}
    if args.export_bot is not None:
        from backtesting.spec import export_bot

        name = args.bot_name or f"{spec.strategy}-{spec.bot.symbol}-best".replace("_", "-")
        bot = export_bot(spec.bot, {**spec.params, **view.metrics.get("best_params", {})}, name)
        args.export_bot.write_text(json.dumps(bot, indent=2) + "\n", encoding="utf-8")
        output["exported_bot"] = str(args.export_bot)
    if args.json:
        print(json.dumps(output, default=str))
    else:
        print(f"optimisation run {run_id}: best {search.objective.value} {view.metrics.get('best_score')} "
              f"with {view.metrics.get('best_params')} ({view.metrics.get('trials', 0)} trials)")
        if "exported_bot" in output:
            print(f"bot written to {output['exported_bot']}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from backtesting.jobs import Worker
    from config.settings import get_settings
    from database.engine import make_engine

    url = get_settings().effective_database_url
    probe = make_engine(url)
    try:  # refuse at once (one line, exit 2, via main.py) rather than retrying an unusable URL forever
        with probe.connect():
            pass
    finally:
        probe.dispose()
    worker = Worker(url, max_jobs=args.jobs, poll_seconds=args.poll)
    if args.once:
        count = worker.run_pending()
        print(f"ran {count} queued run(s)")
        return 0
    print(f"worker {worker.name} waiting for runs (Ctrl-C stops)")
    worker.serve()
    return 0
