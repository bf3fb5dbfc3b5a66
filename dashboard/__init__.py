"""The Dash dashboard: market, bots, backtests and system pages (see docs/dashboard.md)."""
