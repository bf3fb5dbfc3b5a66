"""Market replay: tapes (CSV trade files), their synthesis from 1m candles, and a local server that
speaks the OKX v5 public WebSocket and REST candle protocol from a tape."""
