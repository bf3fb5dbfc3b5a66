"""Market data: OKX client, trade→candle aggregation, the bus, storage writer, backfill and replay."""
