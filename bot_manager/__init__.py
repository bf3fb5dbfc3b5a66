"""Paper-trading bots: configuration, the shared PaperBroker, risk rules, the multi-bot manager and
the service layer the CLI and the dashboard call. See docs/bots.md and docs/paper_trading.md."""
