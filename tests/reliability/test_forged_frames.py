"""Forged and ill-typed trades inside real pushes (issue 13.3), through the real path: replay server ->
WebSocket -> OKX client -> parser -> candle engine -> PostgreSQL.

The replay sends its tape; for a stretch of minutes, one push in three also carries a forged trade
(a ``px``, ``sz``, ``ts`` or ``tradeId`` that is a JSON number, a ``side`` that is not a string, a
trade without ``instId``, an ETH-USDT trade inside the BTC-USDT push) next to the tape's real trades,
and now and then a push holds only forged trades. Every forged trade is counted and skipped; the stored
trades are exactly the tape's, and the stored candles equal an independent aggregation of the tape's
(the good) trades."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from config.domain import DEFAULT_TIMEFRAMES, Timeframe
from data.replay.server import ReplayServer
from data.replay.tape import Tape
from database.engine import session_scope
from database.repositories.market import get_candles
from database.repositories.ops import list_health
from tests.reliability.collector import MINUTE, CollectorRun
from tests.reliability.harness import SYMBOL, LoopThread, market, wait_until

FORGED_ID = 10**12  # no tape id is this large: a forged trade that got in shows in the trades table
Forgery = Callable[[dict[str, Any]], dict[str, Any]]


def _without_inst_id(trade: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trade.items() if k != "instId"}


FORGERIES: list[tuple[str, Forgery]] = [  # (the kind it is counted as, the forgery)
    ("bad_trade", lambda t: {**t, "px": float(t["px"])}),
    ("bad_trade", lambda t: {**t, "sz": float(t["sz"])}),
    ("bad_trade", lambda t: {**t, "ts": int(t["ts"])}),
    ("bad_trade", lambda t: {**t, "tradeId": int(t["tradeId"])}),
    ("bad_trade", lambda t: {**t, "side": True}),
    ("bad_trade", _without_inst_id),
    ("wrong_inst_id", lambda t: {**t, "instId": "ETH-USDT"}),
]


class Forger:
    """Rewrites the replay's pushes whose first trade falls in ``[start_ms, end_ms)``."""

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms
        self.rng = random.Random(13)
        self.pushes = 0
        self.forged: Counter[str] = Counter()

    def _forged_trade(self, real: dict[str, Any], kind_index: int) -> dict[str, Any]:
        # Far from the market (price 1.5, size 1000): an accepted one changes low, volume and the count.
        base = {**real, "tradeId": str(FORGED_ID + sum(self.forged.values())), "px": "1.5", "sz": "1000",
                "side": "buy"}
        kind, forge = FORGERIES[kind_index % len(FORGERIES)]
        self.forged[kind] += 1
        return forge(base)

    def rewrite(self, text: str) -> list[str]:
        push = json.loads(text)
        trades = push["data"]
        if not trades or not self.start_ms <= int(trades[0]["ts"]) < self.end_ms:
            return [text]
        self.pushes += 1
        first, last = trades[0], trades[-1]  # real trades: a forged one copies their fields
        out = []
        if self.pushes % 3 == 0:  # a forged trade among the real ones
            trades.insert(self.rng.randint(0, len(trades)), self._forged_trade(first, self.pushes // 3))
            out.append(json.dumps(push))
        else:
            out.append(text)
        if self.pushes % 10 == 0:  # a push of forged trades only
            only = [self._forged_trade(last, self.pushes + i) for i in range(2)]
            out.append(json.dumps({"arg": push["arg"], "data": only}))
        return out


def good_candles(tape: Tape, start: int, end: int, timeframe: Timeframe) -> pd.DataFrame:
    """Independent aggregation of the tape's trades with ``start <= ts < end`` (plain pandas on the
    tape's arrays, in trade-id order)."""
    frame = pd.DataFrame({"id": tape.trade_id, "ts": tape.ts_ms, "px": tape.price, "sz": tape.size,
                          "buy": np.where(tape.is_buy, tape.size, 0.0)})
    frame = frame[(frame["ts"] >= start) & (frame["ts"] < end)].sort_values("id")
    frame = frame.assign(bucket=frame["ts"] // timeframe.ms * timeframe.ms, quote=frame["px"] * frame["sz"])
    return frame.groupby("bucket").agg(open=("px", "first"), high=("px", "max"), low=("px", "min"),
                                       close=("px", "last"), volume=("sz", "sum"), quote=("quote", "sum"),
                                       buy=("buy", "sum"), count=("px", "size"))


def test_forged_trades_inside_real_pushes_are_counted_and_skipped_and_only_the_good_ones_are_stored(
        loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch) -> None:
    m = market()
    tape = m.tape
    live = tape.first_ts + 10 * MINUTE
    live -= live % MINUTE
    forger = Forger(live + 2 * MINUTE, live + 14 * MINUTE)
    send = ReplayServer._send

    async def forging_send(self: ReplayServer, symbol: str, text: str, trades: int) -> None:
        for i, frame in enumerate(forger.rewrite(text)):
            await send(self, symbol, frame, trades if i == 0 else 0)

    monkeypatch.setattr(ReplayServer, "_send", forging_send)  # the server of this test forges
    run = CollectorRun(loop_thread, tape, speed=600, history_ms=10 * MINUTE, ping_after_s=20.0)
    collector = run.collector
    try:
        wait_until(lambda: run.latest_minute() >= live + 20 * MINUTE, 60, "20 live minutes stored", run.failed)
        loop_thread.call(run.server.pause)
        sent_upto = loop_thread.call(lambda: run.server.position(SYMBOL))
        assert sent_upto < len(tape)  # one pass of the tape: ids are the tape's own
        first_sent = int(np.searchsorted(tape.ts_ms, tape.first_ts + 10 * MINUTE, side="left"))
        want = sorted(int(i) for i in tape.trade_id[first_sent:sent_upto])
        wait_until(lambda: len(stored_trades(run)) >= len(want), 20, "every sent trade stored", run.failed)
        forged = dict(forger.forged)
        assert sum(forged.values()) >= 40 and set(forged) == {"bad_trade", "wrong_inst_id"}, forged

        assert collector.stream.stats.malformed == forged  # the exact count, by kind
        assert collector.stream.stats.reconnects == 0
        rows = stored_trades(run)
        assert [r[0] for r in rows] == want  # each tape trade once, no forged one
        by_id = {int(i): (int(ts), float(p), float(s), bool(b)) for i, ts, p, s, b in zip(
            tape.trade_id, tape.ts_ms, tape.price, tape.size, tape.is_buy, strict=True)}
        assert [(r[1], r[2], r[3], r[4] == "buy") for r in rows] == [by_id[r[0]] for r in rows]

        end = live + 18 * MINUTE  # live minutes 1..17: the stream saw them whole (counts exact)
        for tf in DEFAULT_TIMEFRAMES:
            if tf.ms > 5 * MINUTE:
                continue  # longer buckets hold REST minutes (no trade counts) or are not complete yet
            start = -(-(live + MINUTE) // tf.ms) * tf.ms  # whole buckets of live minutes only
            expected = good_candles(tape, start, tf.floor(end), tf)
            with session_scope(run.sessions) as session:
                stored = get_candles(session, "okx", SYMBOL, tf, start, tf.floor(end))
            assert [c.open_time_ms for c in stored] == [int(t) for t in expected.index], tf
            for c, row in zip(stored, expected.itertuples(), strict=True):
                assert (c.open, c.high, c.low, c.close, c.trade_count) == (
                    row.open, row.high, row.low, row.close, row.count), (tf, c, row)
                assert c.volume == pytest.approx(row.volume, rel=1e-9), (tf, c, row)
                assert c.quote_volume == pytest.approx(row.quote, rel=1e-9), (tf, c, row)
                assert c.buy_volume == pytest.approx(row.buy, rel=1e-9, abs=1e-12), (tf, c, row)
        run.assert_candles_are_the_tapes(end)  # every timeframe, history included (OHLCV)

        deadline = time.monotonic() + 10  # the health report says the same
        while reported_malformed(run) != forged:
            assert time.monotonic() < deadline, f"health reports {reported_malformed(run)}, forged {forged}"
            time.sleep(0.2)
    finally:
        run.close()


def stored_trades(run: CollectorRun) -> list[tuple[int, int, float, float, str]]:
    with run.engine.connect() as conn:
        return [(int(r[0]), int(r[1]), float(r[2]), float(r[3]), str(r[4])) for r in conn.execute(text(
            "SELECT trade_id, (extract(epoch FROM ts) * 1000)::bigint, price, size, side FROM trades "
            "WHERE exchange = 'okx' AND symbol = :s ORDER BY trade_id"), {"s": SYMBOL})]


def reported_malformed(run: CollectorRun) -> dict[str, int] | None:
    with session_scope(run.sessions) as session:
        for row in list_health(session, f"collector.okx.{SYMBOL}"):
            return dict((row.data or {}).get("malformed_frames") or {})
    return None
