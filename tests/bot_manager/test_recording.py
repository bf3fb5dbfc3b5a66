"""Position rows follow the fills: a stop-and-reverse closes one row and opens the next."""

from __future__ import annotations

from decimal import Decimal

from bot_manager.broker import FeeModel, PaperBroker
from bot_manager.recording import track_positions
from config.domain import Side

MIN = 60_000


def test_a_reversal_closes_the_long_row_and_opens_a_short_row_with_its_own_fee() -> None:
    broker = PaperBroker(Decimal(10_000), fees=FeeModel(Decimal("0.0008"), Decimal("0.001")), allow_short=True)
    broker.on_bar(0, 100, 100, 100, 100, 1)
    broker.submit_market("b", Side.BUY, Decimal(10))
    row, closed = track_positions(None, list(broker.on_bar(MIN, 100, 100, 100, 100, 1)), "BTC-USDT")
    assert row is not None and not closed and row["side"] == "long"
    broker.close_position("x")
    broker.submit_market("s", Side.SELL, Decimal(5))
    row, closed = track_positions(row, list(broker.on_bar(2 * MIN, 110, 110, 110, 110, 1)), "BTC-USDT")
    [long] = closed
    # long: entry fee 1000 x 0.1% = 1.00, exit fee 1100 x 0.1% = 1.10, realised 100
    assert (long["status"], long["exit_price"], long["realised_pnl"], long["fees"]) == (
        "closed", Decimal(110), Decimal(100), Decimal("2.10"))
    # short: 5 @ 110 = 550, fee 0.55 (its own fee only)
    assert row is not None and (row["side"], row["quantity"], row["entry_price"], row["fees"], row["status"]) == (
        "short", Decimal(5), Decimal(110), Decimal("0.55"), "open")
