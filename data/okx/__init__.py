"""OKX v5 public market data: frame parsing (pure), WebSocket client and REST client (I/O shells)."""
