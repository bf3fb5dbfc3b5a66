"""Dashboard benchmark: chart payloads, callback latency, concurrent users, page load in Chromium.

    .venv/bin/python benchmarks/bench_dashboard.py            # full run (about 2 minutes)
    .venv/bin/python benchmarks/bench_dashboard.py --quick    # short run (about 30 s)

Needs the local PostgreSQL (a scratch database is created and dropped) and Debian's chromium +
chromium-driver for the page-load figure. Data: 10 080 real OKX BTC-USDT-SWAP 1m candles from
tests/fixtures, and a synthetic 100 000-candle random walk (SYN-USDT) for the long-history case,
both with their 5m/15m/1h/4h/1d roll-ups stored as the collector stores them.

Reference: the naive figure (``go.Figure`` from a pandas DatetimeIndex, whole history) and the
whole history as typed arrays, side by side with what the dashboard sends.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io.json as plotly_json
import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.domain import Candle, Timeframe  # noqa: E402
from config.settings import load_settings  # noqa: E402
from dashboard.candles import OhlcvArrays, resample  # noqa: E402
from dashboard.pages.market import live_edits, load_chart  # noqa: E402
from dashboard.server import WsgiServer, app_context, create_app  # noqa: E402
from database.engine import make_engine, make_session_factory, session_scope  # noqa: E402
from database.migrate import upgrade  # noqa: E402
from database.repositories.market import upsert_candles  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FIXTURE = ROOT / "tests" / "fixtures" / "dash_okx_BTC-USDT-SWAP_1m_2026-01-01_07.csv.gz"
REAL, SYNTH = "okx|BTC-USDT-SWAP", "okx|SYN-USDT"
ROLL_UPS = (Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)
SYSTEM_OUTPUTS = ("system-collectors", "system-components", "system-storage", "system-process", "system-events")
CHART_OUTPUTS = [{"id": "market-chart", "property": "figure"}, {"id": "market-state", "property": "data"},
                 {"id": "market-status", "property": "children"}]


def real_candles() -> list[Candle]:
    with gzip.open(FIXTURE, "rt", newline="") as handle:
        return [Candle("okx", "BTC-USDT-SWAP", Timeframe.M1, int(r["ts_ms"]), float(r["open"]), float(r["high"]),
                       float(r["low"]), float(r["close"]), float(r["volume"])) for r in csv.DictReader(handle)]


def synthetic_candles(n: int, seed: int = 7) -> list[Candle]:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0, 4e-4, n)) * close
    start = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    return [Candle("okx", "SYN-USDT", Timeframe.M1, start + i * 60_000, float(open_[i]),
                   float(max(open_[i], close[i]) + spread[i]), float(min(open_[i], close[i]) - spread[i]),
                   float(close[i]), float(rng.random() * 10)) for i in range(n)]


def roll_up(candles: list[Candle], timeframe: Timeframe) -> list[Candle]:
    arrays = resample(OhlcvArrays.from_candles(candles), timeframe.ms)
    c0 = candles[0]
    return [Candle(c0.exchange, c0.symbol, timeframe, int(t), float(o), float(h), float(lo), float(c), float(v))
            for t, o, h, lo, c, v in zip(*arrays.columns(), strict=True)]


def create_database() -> str:
    name = f"tcp_bench_dash_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    upgrade(url)
    return url


def drop_database(url: str) -> None:
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    conn.close()


def seed(url: str, *series: list[Candle]) -> None:
    """Store the candles and roll-ups, then ANALYZE (what autovacuum does soon after a bulk load;
    without statistics PostgreSQL plans max(open_time) as a scan of the whole market)."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    for candles in series:
        with session_scope(factory) as session:
            upsert_candles(session, candles)
            for timeframe in ROLL_UPS:
                upsert_candles(session, roll_up(candles, timeframe))
    engine.dispose()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ANALYZE candles")
    conn.close()


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = ordered[len(ordered) // 2]
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {p50:7.2f} ms   p95 {p95:7.2f} ms"


def post(url: str, payload: dict) -> tuple[float, int, int]:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url + "/_dash-update-component", data=body,
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
        status = response.status
    return (time.perf_counter() - started) * 1000, status, len(data)


def chart_payload(market: str, timeframe: str = "1m", relayout: dict | None = None) -> dict:
    inputs = [{"id": "market-select", "property": "value", "value": market},
              {"id": "market-timeframe", "property": "value", "value": timeframe},
              {"id": "market-strategy", "property": "value", "value": None},
              {"id": "market-chart", "property": "relayoutData", "value": relayout},
              {"id": "theme-store", "property": "data", "value": "dark"}]
    changed = ["market-chart.relayoutData"] if relayout else ["market-select.value"]
    return {"output": "..market-chart.figure...market-state.data...market-status.children..",
            "outputs": CHART_OUTPUTS, "inputs": inputs, "changedPropIds": changed,
            "state": [{"id": "market-state", "property": "data", "value": None}]}


def live_payload(state: dict, live: dict | None) -> dict:
    return {"output": "market-live.data", "outputs": {"id": "market-live", "property": "data"},
            "inputs": [{"id": "market-live-interval", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["market-live-interval.n_intervals"],
            "state": [{"id": "market-state", "property": "data", "value": state},
                      {"id": "market-live", "property": "data", "value": live}]}


def section(title: str) -> None:
    print(f"\n== {title}")


def bench_payloads(context: object, synthetic: list[Candle], repeats: int) -> None:
    section("chart payload, server side (in-process callback body, PostgreSQL)")
    for label, market, view in (("10k real, newest", REAL, None), ("10k real, whole history", REAL, "all"),
                                ("100k synthetic, newest", SYNTH, None),
                                ("100k synthetic, whole history", SYNTH, "all"),
                                ("100k, newest + sma_cross lines", SYNTH, None)):
        strategy = "sma_cross" if "sma" in label else None
        for _ in range(2):  # warm-up: imports, connection pool, strategy registry
            load_chart(context, market, "1m", strategy, view, "dark")  # type: ignore[arg-type]
        times, size = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            figure, _state, _ = load_chart(context, market, "1m", strategy, view, "dark")  # type: ignore[arg-type]
            times.append((time.perf_counter() - started) * 1000)
            size = len(plotly_json.to_json_plotly(figure))
        print(f"  {label:32s} {percentiles(times)}   {size / 1024:6.1f} KiB")
    section("reference: the whole 100k history in one figure")
    frame = OhlcvArrays.from_candles(synthetic).to_frame()
    started = time.perf_counter()
    index = pd.to_datetime(frame["open_time"], unit="ms")
    naive = go.Figure([go.Candlestick(x=index, open=frame["open"], high=frame["high"], low=frame["low"],
                                      close=frame["close"]), go.Bar(x=index, y=frame["volume"])])
    naive_json = naive.to_json()
    naive_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    typed = go.Figure([go.Candlestick(x=frame["open_time"].to_numpy(float), open=frame["open"].to_numpy(),
                                      high=frame["high"].to_numpy(), low=frame["low"].to_numpy(),
                                      close=frame["close"].to_numpy()),
                       go.Bar(x=frame["open_time"].to_numpy(float), y=frame["volume"].to_numpy())])
    typed_json = typed.to_json()
    typed_ms = (time.perf_counter() - started) * 1000
    print(f"  go.Figure from a DatetimeIndex       {naive_ms:8.1f} ms   {len(naive_json) / 1024:9.1f} KiB")
    print(f"  go.Figure from epoch-ms typed arrays {typed_ms:8.1f} ms   {len(typed_json) / 1024:9.1f} KiB")


def bench_http(url: str, context: object, repeats: int) -> None:
    section("callback latency over HTTP on loopback (waitress), response size")
    for label, market, relayout in (("switch symbol -> 10k real", REAL, None),
                                    ("switch symbol -> 100k synthetic", SYNTH, None),
                                    ("zoom out to all of 100k", SYNTH, {"xaxis.autorange": True})):
        times, sizes = [], []
        for _ in range(repeats):
            elapsed, status, size = post(url, chart_payload(market, relayout=relayout))
            assert status == 200, status
            times.append(elapsed)
            sizes.append(size)
        print(f"  {label:32s} {percentiles(times)}   {max(sizes) / 1024:6.1f} KiB")
    _f, state, _ = load_chart(context, REAL, "1m", None, None, "dark")  # type: ignore[arg-type]
    live = context.live  # type: ignore[attr-defined]
    forming = live_candle(state)
    times, sizes = [], []
    for i in range(repeats):
        live.update(replace(forming, close=forming.open + (i % 7) - 3, closed=False))
        elapsed, status, size = post(url, live_payload(state, None))
        assert status == 200, status
        times.append(elapsed)
        sizes.append(size)
    print(f"  {'live tick (forming candle moved)':32s} {percentiles(times)}   {max(sizes) / 1024:6.1f} KiB")
    started = time.perf_counter()
    for _ in range(repeats):
        live_edits(context, state, None)  # type: ignore[arg-type]
    print(f"  {'live tick, in-process body':32s} {(time.perf_counter() - started) * 1000 / repeats:7.3f} ms mean")


def live_candle(state: dict) -> Candle:
    last = state["live_times"][-1]
    return Candle("okx", "BTC-USDT-SWAP", Timeframe.M1, last + 60_000, 90_000.0, 90_010.0, 89_990.0, 90_000.0, 1.0,
                  closed=False)


def bench_users(url: str, context: object, users: int, seconds: float) -> None:
    section(f"{users} simulated users for {seconds:.0f} s (live tick every 0.5 s, chart reload every 5 s, "
            "system page every 5 s)")
    _f, state, _ = load_chart(context, REAL, "1m", None, None, "dark")  # type: ignore[arg-type]
    live = context.live  # type: ignore[attr-defined]
    forming = live_candle(state)
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def feeder() -> None:
        step = 0
        while not stop.is_set():
            live.update(replace(forming, close=forming.open + step % 9 - 4, closed=False))
            step += 1
            stop.wait(0.25)

    system = {"output": "..system-collectors.children...system-components.children...system-storage.children..."
                        "system-process.children...system-events.children..",
              "outputs": [{"id": i, "property": "children"} for i in SYSTEM_OUTPUTS],
              "inputs": [{"id": "system-interval", "property": "n_intervals", "value": 1}],
              "changedPropIds": ["system-interval.n_intervals"]}

    def user(number: int) -> None:
        next_reload = time.monotonic() + (number % 10) * 0.5
        while not stop.is_set():
            try:
                requests = [live_payload(state, None)]
                if time.monotonic() >= next_reload:
                    requests += [chart_payload(REAL if number % 2 else SYNTH), system]
                    next_reload += 5
                for payload in requests:
                    elapsed, status, _ = post(url, payload)
                    with lock:
                        latencies.append(elapsed)
                        if status not in (200, 204):
                            errors.append(str(status))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(exc))
            stop.wait(0.5)

    threads = [threading.Thread(target=feeder)] + [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    print(f"  requests {len(latencies):6d}   errors {len(errors)}   {percentiles(latencies)}")
    if errors:
        print("  first errors:", errors[:3])


def bench_page_load(url: str, loads: int) -> None:
    section("page load to chart drawn, headless Chromium (110 080 1m candles stored with their roll-ups)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir=/tmp/tcp-bench-chromium-{uuid.uuid4().hex[:6]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(30)
    script = """
        var done = arguments[0];
        (function check() {
            var gd = document.querySelector('#market-chart .js-plotly-plot');
            var ok = gd && gd._fullData && gd._fullData.some(function (t) {
                return t.type === 'candlestick' && t.close && t.close.length > 0; });
            if (ok) { requestAnimationFrame(function () {
                var c = gd._fullData.filter(function (t) { return t.type === 'candlestick'; })[0];
                done([performance.now(), c.close.length, c.name]); }); }
            else { setTimeout(check, 10); }
        })();"""
    times = []
    try:
        for _ in range(loads):
            driver.get(url + "/")
            drawn_ms, shown, name = driver.execute_async_script(script)
            times.append(drawn_ms)
    finally:
        driver.quit()
    print(f"  the first chart: {name}, {shown} candles drawn (the page's default window); the browser "
          "profile starts empty (no cached scripts)")
    print(f"  first (cold) {times[0]:7.0f} ms   then {percentiles(times[1:]) if len(times) > 1 else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 10 s of simulated users")
    args = parser.parse_args()
    repeats, seconds, loads = (10, 10.0, 4) if args.quick else (40, 60.0, 8)
    print(f"machine: {os.cpu_count()} CPUs; mode: {'quick' if args.quick else 'full'}")
    url = create_database()
    try:
        synthetic = synthetic_candles(100_000)
        started = time.perf_counter()
        seed(url, real_candles(), synthetic)
        print(f"seeded 110 080 1m candles + roll-ups in {time.perf_counter() - started:.1f} s")
        settings = load_settings({"DATABASE_URL": url, "TIMEFRAMES": "1m,5m,15m,1h,4h,1d"})
        app = create_app(settings)
        context = app_context(app)
        server = WsgiServer(app.server, "127.0.0.1", 0)
        server.start()
        try:
            bench_payloads(context, synthetic, repeats)
            bench_http(server.url, context, repeats)
            bench_users(server.url, context, 20, seconds)
            bench_page_load(server.url, loads)
        finally:
            server.stop()
            context.close()
    finally:
        drop_database(url)
    print("\ntargets: first chart < 1500 ms; every chart callback <= 30 ms server-side and <= 100 KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
