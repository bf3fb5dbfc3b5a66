"""Recorded real OKX frames parse; anything else is a counted MalformedMessageError, never a crash."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.domain import Side
from config.errors import MalformedMessageError
from data.okx.frames import decode_public, error_symbol, parse_candle_rows, parse_trades
from tests.data.builders import FIXTURES


def _captured_frames(name: str) -> list[str]:
    """Frames received from OKX in a cryptofeed capture (lines ``<unix_ts>: <payload>``)."""
    frames = []
    for line in (FIXTURES / name).read_text().splitlines():
        if " <- " in line or " <-> " in line:
            continue  # sent by the client / connect marker
        frames.append(line.split(": ", 1)[1])
    return frames


def test_every_trades_push_of_the_2022_okx_capture_parses_into_trades() -> None:
    frames = [f for f in _captured_frames("okx_public_ws_capture_2022-05-13_trades_and_events.txt")
              if '"channel":"trades"' in f and '"data"' in f]
    assert len(frames) == 74  # counted in the fixture file
    trades = [t for f in frames for t in parse_trades(f, received_ms=1)]
    raw = [d for f in frames for d in json.loads(f)["data"]]
    assert len(trades) == len(raw)
    for t, r in zip(trades, raw, strict=True):
        assert (t.symbol, t.trade_id, t.ts_ms, t.price, t.size, t.side.value) == (
            r["instId"], int(r["tradeId"]), int(r["ts"]), float(r["px"]), float(r["sz"]), r["side"])
        assert t.exchange == "okx" and t.received_ms == 1


def test_subscribe_acks_of_the_capture_are_events_without_trades() -> None:
    frames = [f for f in _captured_frames("okx_public_ws_capture_2022-05-13_trades_and_events.txt")
              if '"event"' in f]
    assert frames
    for f in frames:
        frame = decode_public(f)
        assert frame.event == "subscribe" and frame.data is None and frame.arg is not None


def test_okcoin_v5_trades_pushes_parse() -> None:
    frames = [f for f in _captured_frames("okx_okcoin_v5_ws_capture_2023-05-27_trades_and_events.txt")
              if '"channel":"trades"' in f and '"data"' in f]
    assert frames
    assert all(parse_trades(f, 0) for f in frames)


def test_tardis_recorded_trades_pushes_parse_and_other_channels_are_flagged() -> None:
    kinds = {}
    for line in (FIXTURES / "okx_v5_ws_messages_tardis_tests.jsonl").read_text().splitlines():
        message = json.loads(line)
        channel = (message.get("arg") or {}).get("channel")
        if "event" in message:
            assert decode_public(line).event == "subscribe"
        elif channel == "trades":
            assert parse_trades(line, 0)[0].trade_id == int(message["data"][0]["tradeId"])
        else:
            with pytest.raises(MalformedMessageError) as info:
                decode_public(line)
            kinds[info.value.kind] = kinds.get(info.value.kind, 0) + 1
    assert set(kinds) == {"unexpected_channel"}


def test_the_documented_modern_trades_push_with_count_and_seq_id_parses() -> None:
    docs = [json.loads(line) for line in (FIXTURES / "okx_v5_doc_examples.jsonl").read_text().splitlines()]
    push = next(d["message"] for d in docs if d["doc_section"] == "trades" and d["example"] == "Push Data Example")
    (trade,) = parse_trades(json.dumps(push), 5)
    assert (trade.trade_id, trade.price, trade.size, trade.side) == (130639474, 42219.9, 0.12060306, Side.BUY)
    error = next(d["message"] for d in docs if d["doc_section"] == "trades" and d["example"].startswith("Failure"))
    frame = decode_public(json.dumps(error))
    assert (frame.event, frame.code) == ("error", "60012")
    notice = next(d["message"] for d in docs if d["doc_section"] == "notice")
    assert decode_public(json.dumps(notice)).code == "64008"


def test_a_real_rest_candle_body_parses_oldest_first() -> None:
    body = (FIXTURES / "okx_rest_market_candles_1m_2025-05-13_nautilus.json").read_bytes()
    candles = parse_candle_rows(body, "BTC-USDT-SWAP")
    assert [c.open_time_ms for c in candles] == [1747093980000, 1747094040000]
    assert (candles[1].open, candles[1].high, candles[1].volume, candles[1].quote_volume) == (
        102806.1, 102820.4, 1040.37, 1069603.34883)


def test_unconfirmed_rest_rows_are_left_out() -> None:
    body = orjson.dumps({"code": "0", "msg": "", "data": [
        ["1747094040000", "1", "2", "0.5", "1.5", "3", "4", "5", "0"],
        ["1747093980000", "1", "2", "0.5", "1.5", "3", "4", "5", "1"]]})
    assert [c.open_time_ms for c in parse_candle_rows(body, "X")] == [1747093980000]


@pytest.mark.parametrize(("frame", "kind"), [
    ("not json at all", "not_json"),
    ("[1,2,3]", "not_object"),
    ('{"event":"party"}', "unknown_event"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"-5","sz":"1",'
     '"side":"buy","ts":"1"}]}', "bad_trade"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"nan","sz":"1",'
     '"side":"buy","ts":"1"}]}', "bad_trade"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"5","sz":"1",'
     '"side":"BUY","ts":"1"}]}', "bad_trade"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"x1","px":"5","sz":"1",'
     '"side":"buy","ts":"1"}]}', "bad_trade"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"}}', "no_arg_or_data"),
    ('{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[{"asks":[]}]}', "unexpected_channel"),
])
def test_malformed_frames_are_classified(frame: str, kind: str) -> None:
    with pytest.raises(MalformedMessageError) as info:
        decode_public(frame)
    assert info.value.kind == kind


def test_an_error_event_names_the_rejected_instrument() -> None:
    msg = "Wrong URL or channel:trades,instId:BTC-USDT-SWAP doesn't exist"
    assert error_symbol(msg, ["BTC-USDT", "BTC-USDT-SWAP"]) == "BTC-USDT-SWAP"
    assert error_symbol("Invalid request", ["BTC-USDT"]) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
trade_like = st.fixed_dictionaries({
    "arg": st.fixed_dictionaries({"channel": st.sampled_from(["trades", "books", ""]),
                                  "instId": st.text(max_size=10)}),
    "data": st.lists(st.dictionaries(st.sampled_from(["tradeId", "px", "sz", "side", "ts", "instId"]),
                                     json_values | st.text(max_size=12), max_size=6), max_size=3),
})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps), trade_like.map(orjson.dumps)))
def test_fuzzed_frames_either_parse_or_raise_malformed_message_error(raw: bytes) -> None:
    try:
        trades = parse_trades(raw, 0)
    except MalformedMessageError as exc:
        assert exc.kind
    else:
        for t in trades:
            assert t.price > 0 and t.size > 0 and t.side in (Side.BUY, Side.SELL)


# ---------------------------------------------------------------------------- forged and ill-typed trades

GOOD = {"instId": "BTC-USDT", "tradeId": "101", "px": "42219.9", "sz": "0.5", "side": "buy", "ts": "1630048897897",
        "count": "1", "source": "0", "seqId": 7}


def push(*trades: dict[str, object], inst: str = "BTC-USDT") -> bytes:
    return orjson.dumps({"arg": {"channel": "trades", "instId": inst}, "data": list(trades)})


def good(trade_id: int, **fields: object) -> dict[str, object]:
    return {**GOOD, "tradeId": str(trade_id), **fields}


def decode_counting(raw: str | bytes) -> tuple[list[int], list[str]]:
    rejected: list[MalformedMessageError] = []
    frame = decode_public(raw, rejected.append)
    assert frame.data is not None
    return [t.tradeId for t in frame.data], [e.kind for e in rejected]


@pytest.mark.parametrize(("field", "value"), [
    ("px", 42219.9), ("sz", 0.5), ("ts", 1630048897897), ("tradeId", 102), ("side", True), ("side", 1),
    ("px", None), ("instId", None), ("px", ["1"]), ("sz", {"v": "1"}),
])
def test_a_trade_field_that_is_not_the_protocols_string_skips_only_that_trade(field: str, value: object) -> None:
    ids, kinds = decode_counting(push(good(101), good(102, **{field: value}), good(103)))
    assert ids == [101, 103]
    assert kinds == ["bad_trade"]


def test_a_trade_without_inst_id_is_skipped() -> None:
    forged = good(102)
    del forged["instId"]
    assert decode_counting(push(good(101), forged)) == ([101], ["bad_trade"])


def test_a_trade_of_another_instrument_inside_a_push_is_skipped_not_stored_as_the_pushs() -> None:
    ids, kinds = decode_counting(push(good(101), good(102, instId="ETH-USDT", px="2500.1"), good(103)))
    assert ids == [101, 103]
    assert kinds == ["wrong_inst_id"]
    assert decode_counting(push(good(102, instId="ETH-USDT"))) == ([], ["wrong_inst_id"])


def test_a_single_forged_trade_push_keeps_nothing_and_counts_it() -> None:
    assert decode_counting(push(good(5, px=1.0))) == ([], ["bad_trade"])


def test_a_bad_value_in_one_trade_no_longer_loses_the_other_trades_of_the_push() -> None:
    ids, kinds = decode_counting(push(good(1, px="-5"), good(2), good(3, side="BUY"), good(4, ts="soon")))
    assert ids == [2]
    assert kinds == ["bad_trade"] * 3


def test_a_duplicate_key_cannot_smuggle_a_json_number_past_its_string_twin() -> None:
    raw = push(good(101)).replace(b'"px":"42219.9"', b'"px":"42219.9","px":1')
    assert decode_counting(raw) == ([], ["bad_trade"])


def test_an_escaped_key_cannot_smuggle_a_json_number() -> None:
    raw = push(good(101)).replace(b'"px":"42219.9"', b'"p\\u0078":1')
    assert decode_counting(raw) == ([], ["bad_trade"])


def test_spaced_json_with_strings_is_still_accepted() -> None:
    raw = json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [good(1), good(2)]}, indent=2)
    assert decode_counting(raw) == ([1, 2], [])


def test_the_default_handler_raises_on_a_forged_trade() -> None:
    with pytest.raises(MalformedMessageError) as info:
        decode_public(push(good(1), good(2, instId="ETH-USDT")))
    assert info.value.kind == "wrong_inst_id" and "ETH-USDT" in info.value.detail


forged_value = st.one_of(st.integers(0, 10**13), st.floats(0.1, 1e6), st.booleans(), st.none())
field_values = {"instId": st.sampled_from(["BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP"]),
                "tradeId": st.integers(0, 10**9).map(str), "px": st.sampled_from(["1", "42219.9", "0.0001", "7"]),
                "sz": st.sampled_from(["1", "0.5", "12"]), "side": st.sampled_from(["buy", "sell"]),
                "ts": st.integers(0, 10**13).map(str)}
maybe_forged_trade = st.fixed_dictionaries({
    key: st.one_of(values, values, forged_value) for key, values in field_values.items()})


@settings(max_examples=300, deadline=None)
@given(st.lists(maybe_forged_trade, max_size=6), st.booleans())
def test_exactly_the_trades_that_are_all_strings_of_the_pushs_instrument_are_kept(
        trades: list[dict[str, object]], compact: bool) -> None:
    """An independent oracle: kept = every field a string and instId the push's; the rest counted."""
    raw = push(*trades) if compact else json.dumps(
        {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": trades}, indent=1)
    ids, kinds = decode_counting(raw)
    expected = [int(t["tradeId"]) for t in trades  # type: ignore[call-overload]
                if all(isinstance(t[k], str) for k in field_values) and t["instId"] == "BTC-USDT"]
    assert ids == expected
    assert len(kinds) == len(trades) - len(expected)
    assert kinds.count("wrong_inst_id") == sum(
        1 for t in trades if all(isinstance(t[k], str) for k in field_values) and t["instId"] != "BTC-USDT")


def test_real_and_replayed_pushes_take_the_fast_path_not_the_salvage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every real trades push (2022 capture, Okcoin, Tardis, the documented modern layout) and every push
    the replay sends is accepted by the skeleton check; the per-trade salvage is for anything else."""
    import data.okx.frames as frames
    from data.replay.market import Feed
    from tests.data.builders import SHORT_TAPE, load

    def no_salvage(raw: object, *_: object) -> None:
        raise AssertionError(f"salvaged a real push: {raw!r:.200}")

    pushes = [f for name in ("okx_public_ws_capture_2022-05-13_trades_and_events.txt",
                             "okx_okcoin_v5_ws_capture_2023-05-27_trades_and_events.txt")
              for f in _captured_frames(name) if '"channel":"trades"' in f and '"data"' in f]
    pushes += [line for line in (FIXTURES / "okx_v5_ws_messages_tardis_tests.jsonl").read_text().splitlines()
               if '"channel":"trades"' in line and '"data"' in line]
    docs = [json.loads(line) for line in (FIXTURES / "okx_v5_doc_examples.jsonl").read_text().splitlines()]
    pushes.append(json.dumps(next(d["message"] for d in docs
                                  if d["doc_section"] == "trades" and d["example"] == "Push Data Example")))
    feed = Feed("BTC-USDT", load(SHORT_TAPE))
    pushes += [feed.push(i, i + n) for i, n in ((0, 1), (1, 3), (4, 40))]
    monkeypatch.setattr(frames, "_salvage", no_salvage)
    for push in pushes:
        frame = decode_public(push.encode())
        assert frame.data and len(frame.data) == len(json.loads(push)["data"])
    assert len(pushes) > 80
