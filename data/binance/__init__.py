"""Binance spot and USDⓈ-M public market data: frame parsers, the trade-stream client, REST repairs."""
