"""Package dependencies point one way (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"config", "database", "data", "strategies", "bot_manager", "backtesting", "dashboard", "main"}
ALLOWED = {
    "config": set(),
    "database": {"config"},
    "strategies": {"config"},
    "data": {"config", "database"},
    "bot_manager": {"config", "database", "data", "strategies"},
    "backtesting": {"config", "database", "strategies", "bot_manager"},
    "dashboard": {"config", "database", "data", "strategies", "bot_manager", "backtesting"},
}
# The dashboard reads through repositories and the bus; it never talks to an exchange.
FORBIDDEN_FOR_DASHBOARD = ("data.okx", "data.binance", "data.venues", "data.replay", "data.collector", "data.service",
                           "websockets")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _package_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def test_every_package_imports_only_the_layers_below_it() -> None:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in _package_files(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in OURS and top != package and top not in allowed:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_the_dashboard_never_talks_to_an_exchange() -> None:
    problems = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _package_files("dashboard")
        for name in _imports(path)
        if name.startswith(FORBIDDEN_FOR_DASHBOARD)
    ]
    assert problems == []


def test_the_checker_sees_a_violation() -> None:
    """Guard against a checker that passes vacuously: it must find imports in a real file."""
    assert "config.domain" in _imports(ROOT / "database" / "repositories" / "market.py")


def test_building_the_command_line_loads_no_pandas_so_the_collector_stays_small() -> None:
    """``python main.py collect`` builds the whole parser: no package's ``cli`` module may import the
    analysis stack at import time (pandas alone is ~40 MB of the collector's RSS)."""
    import subprocess
    import sys

    probe = ("import sys, main; main.build_parser(); "
             "print(sorted(m for m in ('pandas', 'talib', 'plotly', 'dash') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
