"""``python main.py bot list|create|start|stop|pause|resume|delete|validate|schema|run``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from config.settings import get_settings

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "bot_schema.json"
ARBITRAGE_SCHEMA_PATH = SCHEMA_PATH.with_name("arbitrage_bot_schema.json")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bot = subparsers.add_parser("bot", help="paper-trading bots (see docs/bots.md)")
    sub = bot.add_subparsers(dest="bot_command", required=True)
    sub.add_parser("list", help="every bot with status, equity, PnL, position, last signal").set_defaults(
        func=_list)
    validate = sub.add_parser("validate", help="check a bot file (exit 0 valid, 2 invalid)")
    validate.add_argument("--config", required=True, type=Path, metavar="PATH")
    validate.set_defaults(func=_validate)
    create = sub.add_parser("create", help="store a new bot from a JSON file")
    create.add_argument("--config", required=True, type=Path, metavar="PATH")
    create.add_argument("--start", action="store_true", help="start it right away")
    create.set_defaults(func=_create)
    for name, text in (("start", "start or resume a bot"), ("stop", "stop a bot (state kept)"),
                       ("pause", "stop acting on signals; exits keep running"),
                       ("resume", "resume a paused or halted bot"), ("delete", "delete a bot and its records")):
        command = sub.add_parser(name, help=text)
        target = command.add_mutually_exclusive_group(required=True)
        target.add_argument("--name")
        target.add_argument("--config", type=Path, metavar="PATH", help="the bot named in this file")
        command.set_defaults(func=_control, action=name)
    schema = sub.add_parser("schema", help="print the bot JSON schema (--write updates config/bot_schema.json and "
                                                "config/arbitrage_bot_schema.json)")
    schema.add_argument("--write", action="store_true")
    schema.set_defaults(func=_schema)
    sub.add_parser("run", help="run only the bot manager (bus + database from the settings)").set_defaults(
        func=_run)


def _service():  # type: ignore[no-untyped-def]
    from bot_manager.service import BotService
    from database.engine import make_engine, make_session_factory
    from database.migrate import upgrade

    url = get_settings().effective_database_url
    upgrade(url)
    return BotService(make_session_factory(make_engine(url)))


def _validate(args: argparse.Namespace) -> int:
    from bot_manager.config import load_bot_file

    c = load_bot_file(args.config)
    print(f"{args.config}: valid: bot {c.name!r} {c.strategy}{json.dumps(c.params, sort_keys=True)} on "
          f"{c.exchange} {c.symbol} {c.timeframe.value}, {c.starting_balance} {c.quote_currency}, "
          f"sizing {c.sizing.method}, {c.direction.value}, leverage {c.leverage:g}")
    return 0


def _create(args: argparse.Namespace) -> int:
    from bot_manager.config import load_bot_file

    load_bot_file(args.config)
    s = _service().create_bot(args.config, start=args.start, config_path=str(args.config))
    print(f"created bot {s.name!r} ({s.status})")
    return 0


def _control(args: argparse.Namespace) -> int:
    from bot_manager.config import load_bot_file

    name = args.name if args.name else load_bot_file(args.config, check_strategy=False).name
    service = _service()
    if args.action == "delete":
        service.delete(name)
        print(f"deleted bot {name!r}")
        return 0
    summary = getattr(service, args.action)(name)
    print(f"bot {name!r}: {summary.status}")
    return 0


def _list(args: argparse.Namespace) -> int:
    bots = _service().list_bots()
    if not bots:
        print("no bots")
        return 0
    print(f"{'NAME':<24} {'STATUS':<8} {'MARKET':<22} {'STRATEGY':<14} {'EQUITY':>12} {'PNL':>10} "
          f"{'POSITION':<18} LAST SIGNAL")
    for b in bots:
        position = "flat" if b.position_side is None else f"{b.position_side} {b.position_quantity.normalize()}"
        print(f"{b.name:<24} {b.status:<8} {b.exchange + ' ' + b.symbol + ' ' + b.timeframe:<22} "
              f"{b.strategy:<14} {b.equity:>12.2f} {b.pnl:>10.2f} {position:<18} {b.last_signal or '-'}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from bot_manager.arbitrage_config import arbitrage_json_schema
    from bot_manager.config import bot_json_schema

    text = json.dumps(bot_json_schema(), indent=2) + "\n"
    if args.write:
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        ARBITRAGE_SCHEMA_PATH.write_text(json.dumps(arbitrage_json_schema(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {SCHEMA_PATH} and {ARBITRAGE_SCHEMA_PATH}")
    else:
        print(text, end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot_manager.runtime import run_bots
    from data.bus import make_bus
    from database.migrate import upgrade

    settings = get_settings()
    upgrade(settings.effective_database_url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bus = make_bus(settings.redis_url, settings.redis_prefix)
        try:
            await run_bots(settings, bus, stop)
        finally:
            await bus.close()

    asyncio.run(main())
    return 0
