"""Bybit v5 public market data: spot and linear trade streams and REST (see frames)."""
