"""Binance frame and REST parsing on real captured frames (tests/fixtures/README.md), pure."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from config.domain import Side
from config.errors import MalformedMessageError
from data.binance.frames import (
    BinanceRestError,
    Kind,
    Reply,
    decode_frame,
    market,
    parse_historical_trades,
    parse_klines,
    parse_server_time,
    parse_symbols,
)
from tests.data.builders import FIXTURES

MIXED = FIXTURES / "binance_ws_mixed_frames_2024-08-08T2354.jsonl"
SPOT_FRAMES = FIXTURES / "binance_spot_btcusdt_trade_frames_2024-08-08T2354_0005.jsonl.gz"
USDM_FRAMES = FIXTURES / "binance_usdm_btcusdt_trade_frames_2024-08-08T2354_2400.jsonl.gz"
SPOT = {"BTCUSDT": "BTC-USDT"}


def lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:  # type: ignore[operator]
        return [line.rstrip("\n") for line in f if line.strip()]


def test_names_are_ours_with_the_venue_name_kept() -> None:
    spot, perp = market("BTC-USDT"), market("ETH-USDC-SWAP")
    assert (spot.venue_symbol, spot.kind, spot.stream) == ("BTCUSDT", Kind.SPOT, "btcusdt@trade")
    assert (perp.symbol, perp.venue_symbol, perp.kind) == ("ETH-USDC-SWAP", "ETHUSDC", Kind.USDM)
    for bad in ("BTCUSDT", "btc-usdt", "BTC-USDT-FUT", "BTC--USDT", "BTC-USDT-SWAP-X"):
        with pytest.raises(ValueError, match="BASE-QUOTE"):
            market(bad)


@pytest.mark.parametrize("path", [SPOT_FRAMES, USDM_FRAMES], ids=["spot", "usdm"])
def test_every_captured_trade_frame_decodes_to_the_trade_it_carries(path: Path) -> None:
    frames = lines(path)
    assert len(frames) > 19_000
    symbol = "BTC-USDT-SWAP" if path is USDM_FRAMES else "BTC-USDT"
    names = {"BTCUSDT": symbol}
    for text in frames:
        data = json.loads(text)["data"]
        got_symbol, trade = decode_frame(text.encode(), names)  # type: ignore[misc]
        assert got_symbol == symbol and trade.instId == symbol
        assert (trade.tradeId, trade.ts) == (data["t"], data["T"])
        assert (trade.px, trade.sz) == (float(data["p"]), float(data["q"]))
        assert trade.side is (Side.SELL if data["m"] else Side.BUY)
        # the raw event of /ws decodes the same as the /stream envelope
        assert decode_frame(json.dumps(data), names) == (symbol, trade)


def test_other_streams_are_not_trades_and_replies_are_replies() -> None:
    kinds = {"trade": 0, "other": 0}
    for text in lines(MIXED):
        stream = json.loads(text)["stream"]
        result = decode_frame(text, SPOT)
        if stream.endswith("@trade"):
            assert isinstance(result, tuple)
            kinds["trade"] += 1
        else:
            assert result is None, stream  # bookTicker, depth: not this parser's
            kinds["other"] += 1
    assert kinds == {"trade": 16, "other": 12}
    assert decode_frame('{"result":null,"id":3}', SPOT) == Reply(3)
    error = decode_frame('{"code":2,"msg":"Invalid request: unknown method","id":4}', SPOT)
    assert error == Reply(4, 2, "Invalid request: unknown method") and not error.ok  # type: ignore[union-attr]
    assert decode_frame('{"result":["btcusdt@trade"],"id":5}', SPOT) == Reply(5)


def _usdm(**change: object) -> str:
    event = {"e": "trade", "E": 1723161256322, "T": 1723161256322, "s": "BTCUSDT", "t": 5266583935,
             "p": "61800.30", "q": "0.006", "X": "MARKET", "m": False, **change}
    return json.dumps({"stream": "btcusdt@trade", "data": event})


@pytest.mark.parametrize(("text", "kind"), [
    ("not json", "not_json"),
    ("[1,2]", "not_object"),
    ('{"foo":1}', "unexpected_frame"),
    (_usdm(p="-1"), "bad_trade"),
    (_usdm(q="0"), "bad_trade"),
    (_usdm(p="nan"), "bad_trade"),
    (_usdm(t="x"), "bad_trade"),
    (_usdm(m=None), "bad_trade"),
    (_usdm(e="aggTrade"), "bad_trade"),
    (_usdm(s="ETHUSDT"), "unknown_symbol"),
    (_usdm(X="INSURANCE_FUND"), "not_market_trade"),
    (_usdm(X="ADL"), "not_market_trade"),
])
def test_a_malformed_frame_raises_with_a_kind_to_count(text: str, kind: str) -> None:
    with pytest.raises(MalformedMessageError) as info:
        decode_frame(text, SPOT)
    assert info.value.kind == kind


def test_the_valid_variant_of_each_malformed_frame_decodes() -> None:
    symbol, trade = decode_frame(_usdm(), SPOT)  # type: ignore[misc]
    assert (symbol, trade.px, trade.sz, trade.side) == ("BTC-USDT", 61800.3, 0.006, Side.BUY)
    assert math.isfinite(trade.px)


ROW = [1723161240000, "61700.1", "61800.3", "61650", "61780.5", "12.5", 1723161299999, "771234.5", 321,
       "7.25", "447000.1", "0"]


def test_klines_rows_become_candles_and_the_forming_minute_is_left_out() -> None:
    forming = [ROW[0] + 60_000, "1", "1", "1", "1", "1", ROW[6] + 60_000, "1", 1, "1", "1", "0"]
    body = json.dumps([forming, ROW])
    candles = parse_klines(body, "BTC-USDT", server_ms=ROW[6] + 1)
    assert len(candles) == 1
    c = candles[0]
    assert (c.exchange, c.symbol, c.open_time_ms) == ("binance", "BTC-USDT", 1723161240000)
    assert (c.open, c.high, c.low, c.close, c.volume) == (61700.1, 61800.3, 61650.0, 61780.5, 12.5)
    assert (c.quote_volume, c.buy_volume, c.trade_count) == (771234.5, 7.25, 321)
    assert [x.open_time_ms for x in parse_klines(body, "BTC-USDT")] == [ROW[0], ROW[0] + 60_000]  # oldest first
    with pytest.raises(MalformedMessageError) as info:
        parse_klines(json.dumps([ROW[:5]]), "BTC-USDT")
    assert info.value.kind == "bad_candle_row"


def test_rest_bodies_and_errors() -> None:
    with pytest.raises(BinanceRestError) as info:
        parse_klines('{"code":-1121,"msg":"Invalid symbol."}', "BTC-USDT")
    assert (info.value.code, info.value.message) == (-1121, "Invalid symbol.")
    assert parse_server_time('{"serverTime":1723161255341}') == 1723161255341
    trades = parse_historical_trades('[{"id":7,"price":"61800.3","qty":"0.5","quoteQty":"30900.15","time":5,'
                                     '"isBuyerMaker":true,"isBestMatch":true}]', "BTC-USDT")
    assert [(t.tradeId, t.px, t.sz, t.side, t.ts) for t in trades] == [(7, 61800.3, 0.5, Side.SELL, 5)]
    info_body = json.dumps({"symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
         "contractType": "PERPETUAL"},
        {"symbol": "BTCUSDT_240927", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
         "contractType": "CURRENT_QUARTER"},
        {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT"}]})
    assert parse_symbols(info_body, Kind.USDM) == ["BTC-USDT-SWAP"]
    spot_body = '{"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC"}]}'
    assert parse_symbols(spot_body, Kind.SPOT) == ["ETH-BTC"]
    for bad in ("nope", '{"symbols":3}'):
        with pytest.raises(MalformedMessageError):
            parse_symbols(bad, Kind.SPOT)
