"""``python -m data collect|backfill|replay|tape …``: the market-data commands without the rest of the
platform loaded (``python main.py`` imports every package's commands). Same options as main.py."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import OperationalError

from config.errors import ConfigurationError
from config.logging_setup import setup_logging
from config.settings import get_settings
from data.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data", description=__doc__)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        setup_logging(settings.log_level, settings.log_dir)
        return int(args.func(args) or 0)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # the database is not there: one line, like main.py
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(f"error: DATABASE_URL: cannot use the database: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
