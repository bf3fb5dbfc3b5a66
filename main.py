"""TCP Dashboard command line.

``python main.py`` runs the whole platform (collector, strategy engine, bots, dashboard);
``python main.py --help`` lists the subcommands. Each package registers its own subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from config.errors import ConfigurationError

# Packages that add subcommands through a ``register(subparsers)`` function in their ``cli`` module.
COMMAND_MODULES = (
    "database.cli",
    "data.cli",
    "strategies.cli",
    "bot_manager.cli",
    "backtesting.cli",
    "dashboard.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="TCP Dashboard: OKX market data, strategies, paper-trading bots, backtests, dashboard. "
        "Without a subcommand, runs the whole platform.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = subparsers.add_parser("run", help="run the whole platform (the default without a subcommand)")
    run.set_defaults(func=_run_platform)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def _run_platform(args: argparse.Namespace) -> int:
    from platform_runner import run_platform

    return run_platform()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from config.logging_setup import setup_logging
        from config.settings import get_settings

        settings = get_settings()
        setup_logging(settings.log_level, settings.log_dir)
        if args.command is None:
            args = parser.parse_args(["run", *(argv or [])])
        return int(args.func(args) or 0)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
