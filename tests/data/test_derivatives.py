"""Funding rate, open interest and liquidation pushes (issue 14.3) parsed from real recorded venue messages
(tardis.dev's mapper-test captures of OKX v5, Binance USDⓈ-M and Bybit v5; tests/fixtures/README.md), and
malformed ones refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.domain import Side
from data import derivatives as d
from tests.data.builders import FIXTURES


def messages(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


OKX = [m for m in messages("okx_v5_ws_messages_tardis_tests.jsonl") if not m.get("generated")]
OTHERS = messages("binance_bybit_ws_messages_tardis_tests.jsonl")


def binance(event: str) -> list[dict[str, Any]]:
    return [m["data"] for m in OTHERS if isinstance(m.get("data"), dict) and m["data"].get("e") == event]


def okx(channel: str) -> list[dict[str, Any]]:
    return [item for m in OKX if m.get("arg", {}).get("channel") == channel for item in m["data"]]


def test_okx_funding_rate_pushes_with_and_without_the_current_rate() -> None:
    first, second = (d.okx_funding(item, 1_640_131_260_000) for item in okx("funding-rate"))
    assert first == d.FundingRate("okx", "WNCG-USDT-SWAP", "WNCG-USDT-SWAP", 1_640_131_260_000, 0.00048105,
                                  1_640_131_200_000, 0.00114)
    assert (second.symbol, second.rate, second.next_rate, second.funding_time_ms) == (
        "SOS-USDT-SWAP", None, 0.0003, 1_640_851_200_000)  # OKX left fundingRate out: None, not 0


def test_okx_open_interest_and_liquidation_orders() -> None:
    futures, swap = (d.okx_open_interest(item) for item in okx("open-interest"))
    assert swap == d.OpenInterest("okx", "WNCG-USDT-SWAP", "WNCG-USDT-SWAP", 1_640_131_258_756, 644_195.0, 644_195.0)
    assert (futures.symbol, futures.contracts, futures.base) == ("FIL-USDT-220325", 236_870.0, 23_687.0)
    liquidations = [x for item in okx("liquidation-orders") for x in d.okx_liquidations(item)]
    assert len(liquidations) == 2  # the capture holds the same push twice; deduplication is the store's
    assert liquidations[0] == d.Liquidation("okx", "XRP-USD-230929", "XRP-USD-230929", 1_680_173_247_614, Side.BUY,
                                            0.55205, 39.0)


def test_binance_mark_price_and_force_order() -> None:
    marks = [d.binance_mark_price(m) for m in binance("markPriceUpdate")]
    assert len(marks) == 3 and marks[2].symbol == "BTC-BUSD-210129"  # a dated future, named the OKX way
    assert marks[0] == d.FundingRate("binance", "BTC-USDT-SWAP", "BTCUSDT", 1_569_888_003_001, 0.0001,
                                     1_569_916_800_000, None, 8291.34697815)
    [force] = [d.binance_force_order(m) for m in binance("forceOrder")]
    # a forced BUY of 0.014 BTC (a short liquidated), filled on average at 4706.04 (its limit was 4793.91)
    assert force == d.Liquidation("binance", "BTC-USDT-SWAP", "BTCUSDT", 1_584_059_031_421, Side.BUY, 4706.04, 0.014)


def test_bybit_linear_ticker_and_all_liquidation() -> None:
    [ticker] = [m for m in OTHERS if m.get("topic") == "tickers.BTCUSDT"]
    funding, oi = d.bybit_ticker(ticker)
    assert funding == d.FundingRate("bybit", "BTC-USDT-SWAP", "BTCUSDT", 1_680_673_821_770, 0.0001,
                                    1_680_681_600_000, None, 28552.81)
    assert oi == d.OpenInterest("bybit", "BTC-USDT-SWAP", "BTCUSDT", 1_680_673_821_770, 52774.528)
    [push] = [m for m in OTHERS if str(m.get("topic", "")).startswith("allLiquidation.")]
    [liq] = d.bybit_liquidations(push)
    # S=Sell: a short position was liquidated, so the forced order buys
    assert liq == d.Liquidation("bybit", "PIPPIN-USDT-SWAP", "PIPPINUSDT", 1_740_480_207_110, Side.BUY, 0.02456, 2846.0)
    assert d.bybit_ticker({"topic": "tickers.BTCUSDT", "ts": 1, "data": {"symbol": "BTCUSDT", "bid1Price": "1"}}) \
        == (None, None)  # a delta without those fields


@pytest.mark.parametrize(("parse", "raw", "reason"), [
    (lambda r: d.okx_funding(r, 0), {"instId": "BTC-USDT-SWAP", "fundingRate": "0.0001"}, "missing 'fundingTime'"),
    (d.okx_open_interest, {"instId": "BTC-USDT-SWAP", "oi": "lots", "ts": "1"}, "'oi' is not a number: 'lots'"),
    (d.okx_liquidations, {"instId": "X", "details": [{"side": "hold", "bkPx": "1", "sz": "1", "ts": "1"}]},
     "side is neither buy nor sell: 'hold'"),
    (d.binance_mark_price, {"e": "trade"}, "not a markPriceUpdate"),
    (d.binance_mark_price, {"e": "markPriceUpdate", "E": 1, "s": "BTCEUR", "r": "0", "T": 1}, "cannot split 'BTCEUR'"),
    (d.binance_force_order, {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "BUY", "p": "nan", "q": "1", "T": 1}},
     "'p' is not finite"),
    (d.bybit_liquidations, {"topic": "allLiquidation.X", "data": {}}, "missing 'data'"),
])
def test_a_malformed_push_is_refused_with_the_reason(parse: Any, raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse(raw)
