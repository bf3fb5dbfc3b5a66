"""The paper arbitrage bot on the real Binance spot and USDⓈ-M BTCUSDT books of 2024-08-08 23:54-24:00
(data/samples/README.md), every fill confirmed by hand.

The books are rebuilt here with plain json and dicts (the recorded snapshot plus each update), and a top of
each market is taken every 250 ms of event time, as the BookKeeper does. The bot trades the basis: it buys
one market and sells the other when the net edge is at least 5 bps, and undoes the trade once that costs at
most 2 bps. The hand computation walks each fill's book in plain floats (average price, fee on the notional),
finds the book each order must have filled on (the leg's first book at least the latency after the decision),
and sums the realised PnL and fees of every round trip into each leg's balance."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from bot_manager.arbitrage import ArbitrageBot, ArbitrageConfig, Leg, basis_bps, spread_quotes
from bot_manager.broker import FeeModel
from config.domain import BookTop, Side
from data.service import BINANCE_DEPTH

SPOT, PERP = Leg("binance", "BTC-USDT"), Leg("binance", "BTC-USDT-SWAP")
LOT = 0.00001
Q = 0.05
FEE = FeeModel(Decimal("0"), Decimal("0.00005"))  # 0.5 bp taker: a VIP tier (the regular 15 bps never pays)
LATENCY = 100


def recorded_tops(depth: int = 20, every_ms: int = 250) -> list[BookTop]:
    events = []
    books = {}
    for symbol, path in BINANCE_DEPTH.items():
        with gzip.open(path, "rt") as f:
            for line in f:
                body = json.loads(line.split(" ", 1)[1])
                if "lastUpdateId" in body:
                    books[symbol] = ({float(p): float(s) for p, s in body["bids"]},
                                     {float(p): float(s) for p, s in body["asks"]}, body["lastUpdateId"])
                else:
                    events.append((body["data"]["E"], symbol, body["data"]))
    events.sort(key=lambda e: e[0])
    tops, last = [], dict.fromkeys(books, 0)
    for ts, symbol, event in events:
        bids, asks, snapshot_id = books[symbol]
        if event["u"] <= snapshot_id:
            continue
        for side, levels in ((bids, event["b"]), (asks, event["a"])):
            for p, s in levels:
                if float(s) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(s)
        if ts - last[symbol] >= every_ms:
            last[symbol] = ts
            tops.append(BookTop("binance", symbol, ts, tuple(sorted(bids.items(), reverse=True)[:depth]),
                                tuple(sorted(asks.items())[:depth]), event["u"]))
    return tops


TOPS = recorded_tops()


def walk(top: BookTop, side: Side, quantity: float) -> tuple[float, float]:
    """(average price, notional) of taking ``quantity`` from ``top`` (level sizes floored to the lot)."""
    left, notional = quantity, 0.0
    for price, size in (top.asks if side is Side.BUY else top.bids):
        take = min(left, int(size / LOT + 1e-9) * LOT)
        notional += take * price
        left -= take
        if left <= 1e-12:
            break
    assert left <= 1e-12, "the top holds the order"
    return notional / quantity, notional


def run_bot(**overrides: object) -> tuple[ArbitrageBot, list]:
    config = ArbitrageConfig("basis", (SPOT, PERP), Decimal(str(Q)), 5.0, 2.0, (Decimal(10_000), Decimal(10_000)),
                             fees=(FEE, FEE), latency_ms=LATENCY)
    bot = ArbitrageBot(config if not overrides else ArbitrageConfig(**{**config.__dict__, **overrides}))
    fills = [f for top in TOPS for f in bot.on_book(top)]
    return bot, fills


def test_every_fill_of_the_basis_trade_is_confirmed_by_hand() -> None:
    bot, fills = run_bot()
    decisions = bot.decisions
    assert len(decisions) >= 5 and bot.rejections == []
    assert [d.action for d in decisions] == ["open", "close"] * (len(decisions) // 2) + ["open"] * (len(decisions) % 2)
    by_leg = {leg.key: [t for t in TOPS if (t.exchange, t.symbol) == leg.key] for leg in (SPOT, PERP)}
    legs = (SPOT, PERP)
    expected_balance = {SPOT.key: 10_000.0, PERP.key: 10_000.0}
    entry: dict[tuple[str, str], tuple[Side, float]] = {}
    for n, d in enumerate(decisions):
        # The decision holds by hand on the two latest tops at its time.
        latest = {leg.key: [t for t in by_leg[leg.key] if t.ts_ms <= d.ts_ms][-1] for leg in legs}
        long_top, short_top = latest[legs[d.long].key], latest[legs[d.short].key]
        if d.action == "open":
            edge = (short_top.bids[0][0] - long_top.asks[0][0]) / long_top.asks[0][0] * 1e4 - 1.0
            assert edge == pytest.approx(d.bps) and edge >= 5.0
        else:
            cost = (short_top.asks[0][0] - long_top.bids[0][0]) / short_top.asks[0][0] * 1e4  # on the buy price
            assert cost == pytest.approx(d.bps) and cost <= 2.0
        # Each leg's order fills on that leg's first book at least the latency after the decision, walking it.
        pair = fills[2 * n:2 * n + 2]
        assert len(pair) == 2 and {f.leg.key for f in pair} == {SPOT.key, PERP.key}
        for lf in pair:
            book = next(t for t in by_leg[lf.leg.key] if t.ts_ms >= d.ts_ms + LATENCY)
            f = lf.fill
            bought = legs[d.long].key == lf.leg.key
            side = (Side.BUY if bought else Side.SELL) if d.action == "open" else (Side.SELL if bought else Side.BUY)
            price, notional = walk(book, side, Q)
            assert (f.ts_ms, f.side, float(f.quantity)) == (book.ts_ms, side, Q)
            assert float(f.price) == pytest.approx(price, abs=1e-9)
            assert float(f.fee) == pytest.approx(notional * 0.00005, abs=1e-8)
            expected_balance[lf.leg.key] -= notional * 0.00005
            if d.action == "open":
                entry[lf.leg.key] = (side, notional)
                assert f.realised_pnl == 0
            else:
                was, opened = entry.pop(lf.leg.key)
                pnl = notional - opened if was is Side.BUY else opened - notional  # sold high, bought back
                assert float(f.realised_pnl) == pytest.approx(pnl, abs=1e-8)
                expected_balance[lf.leg.key] += pnl
                assert float(f.balance_after) == pytest.approx(expected_balance[lf.leg.key], abs=1e-7)
    assert len(fills) == 2 * len(decisions)
    for i, leg in enumerate(legs):
        if bot.trade is None:
            assert float(bot.brokers[i].balance) == pytest.approx(expected_balance[leg.key], abs=1e-7)


def test_latency_delays_the_fills_to_later_books() -> None:
    """The same decisions; with no latency every order fills on its leg's next book, with 1 s on a later one
    (the edge captured is not the edge quoted: the leg risk of a slow connection)."""
    slow, slow_fills = run_bot(latency_ms=1000)
    fast, fast_fills = run_bot(latency_ms=0)
    assert fast.decisions[0] == slow.decisions[0]
    first = fast.decisions[0].ts_ms
    by_leg = lambda fills: sorted(fills[:2], key=lambda f: f.leg.symbol)  # noqa: E731
    for f_fast, f_slow in zip(by_leg(fast_fills), by_leg(slow_fills), strict=True):
        assert f_fast.leg == f_slow.leg
        assert first <= f_fast.fill.ts_ms < first + 1000 <= f_slow.fill.ts_ms


def test_with_the_regular_binance_fees_the_bot_never_trades_this_basis() -> None:
    bot, fills = run_bot(fees=None)  # spot 10 bps + USDⓈ-M 5 bps taker: a 15 bp hurdle on a basis under 11 bps
    assert bot.fees == (FeeModel.for_venue("binance", "BTC-USDT"), FeeModel.for_venue("binance", "BTC-USDT-SWAP"))
    assert (bot.trades_opened, fills) == (0, [])


def test_quotes_and_basis_by_hand() -> None:
    spot = BookTop("binance", "BTC-USDT", 1, ((61837.63, 3.788),), ((61837.64, 1.5),))
    perp = BookTop("binance", "BTC-USDT-SWAP", 2, ((61800.2, 2.909),), ((61800.3, 0.696),))
    buy_spot, buy_perp = spread_quotes(spot, perp, FeeModel.for_venue(*SPOT.key), FeeModel.for_venue(*PERP.key))
    assert buy_spot is not None and buy_perp is not None
    assert buy_spot.gross_bps == pytest.approx((61800.2 - 61837.64) / 61837.64 * 1e4)
    assert buy_perp.gross_bps == pytest.approx((61837.63 - 61800.3) / 61800.3 * 1e4)  # 6.04 bps
    assert buy_perp.fees_bps == pytest.approx(15.0) and buy_perp.net_bps == pytest.approx(6.0404 - 15.0, abs=1e-3)
    assert (buy_perp.size, buy_perp.ts_ms) == (0.696, 2)
    assert basis_bps(spot, perp) == pytest.approx((61800.25 - 61837.635) / 61837.635 * 1e4)


def test_a_leg_the_margin_cuts_short_is_matched_by_trimming_the_other_by_hand() -> None:
    """The spot leg's 100 USDT carries a short of only 0.00161 BTC (99.56 USDT at 61 840): the margin cuts its
    sale there, so the perpetual's 0.05 BTC is cut back to 0.00161 at market (hand-made books, 0.5 bp fees)."""
    config = ArbitrageConfig("basis", (SPOT, PERP), Decimal("0.05"), 5.0, 2.0, (Decimal(100), Decimal(10_000)),
                             fees=(FEE, FEE))

    def top(leg: Leg, ts: int, bid: float, ask: float) -> BookTop:
        return BookTop(leg.exchange, leg.symbol, ts, ((bid, 1.0),), ((ask, 1.0),))

    bot = ArbitrageBot(config)
    assert bot.on_book(top(PERP, 1, 61_800.0, 61_800.1)) == []
    assert bot.on_book(top(SPOT, 2, 61_840.0, 61_840.1)) == []  # spot 6.45 bps rich: sell spot, buy perp
    assert [d.action for d in bot.decisions] == ["open"]
    (bought,) = bot.on_book(top(PERP, 3, 61_801.0, 61_801.1))
    assert (bought.fill.side, float(bought.fill.price), bought.fill.quantity) == (Side.BUY, 61_801.1, Decimal("0.05"))
    (sold,) = bot.on_book(top(SPOT, 4, 61_840.0, 61_840.1))
    # the most 100 USDT of margin can carry, net of the fee, floored to the 0.00001 lot
    cap = int(100 / (61_840.0 * (1 + 0.00005)) / 0.00001) * 0.00001
    assert float(sold.fill.quantity) == pytest.approx(cap) and sold.fill.quantity < Decimal("0.05")
    assert [d.action for d in bot.decisions] == ["open", "trim"] and bot.trade is not None
    (trimmed,) = bot.on_book(top(PERP, 5, 61_790.0, 61_790.1))
    assert (trimmed.fill.side, float(trimmed.fill.price)) == (Side.SELL, 61_790.0)
    assert float(trimmed.fill.quantity) == pytest.approx(0.05 - cap)
    assert bot.brokers[1].quantity == -bot.brokers[0].quantity == sold.fill.quantity  # a hedged pair again
    assert float(trimmed.fill.realised_pnl) == pytest.approx((61_790.0 - 61_801.1) * (0.05 - cap), abs=1e-8)


def test_a_refused_leg_is_undone_by_hand() -> None:
    """With 1 USDT the spot leg cannot sell even one lot: refused, so the perpetual bought meanwhile is sold
    back whole (abort)."""
    config = ArbitrageConfig("basis", (SPOT, PERP), Decimal("0.05"), 5.0, 2.0, (Decimal("0.1"), Decimal(10_000)),
                             fees=(FEE, FEE))

    def top(leg: Leg, ts: int, bid: float, ask: float) -> BookTop:
        return BookTop(leg.exchange, leg.symbol, ts, ((bid, 1.0),), ((ask, 1.0),))

    bot = ArbitrageBot(config)
    bot.on_book(top(PERP, 1, 61_800.0, 61_800.1))
    bot.on_book(top(SPOT, 2, 61_840.0, 61_840.1))
    bot.on_book(top(PERP, 3, 61_801.0, 61_801.1))
    assert bot.on_book(top(SPOT, 4, 61_840.0, 61_840.1)) == []
    assert [(leg.symbol, why) for leg, _, why in bot.rejections] == [("BTC-USDT", "insufficient margin")]
    assert [d.action for d in bot.decisions] == ["open", "abort"] and bot.trade is None
    (undone,) = bot.on_book(top(PERP, 5, 61_790.0, 61_790.1))
    assert (undone.fill.side, float(undone.fill.price), undone.fill.position_after) == (Side.SELL, 61_790.0, 0)
    fees = (61_801.1 + 61_790.0) * 0.05 * 0.00005
    assert float(bot.brokers[1].balance) == pytest.approx(10_000 + (61_790.0 - 61_801.1) * 0.05 - fees, abs=1e-7)
    assert bot.brokers[0].quantity == 0 and bot.brokers[0].balance == Decimal("0.1")
