"""HTTP authorizations against PostgreSQL: throughput, p50 and p99 at fixed arrival rates.

Open loop: request i is sent at t0 + i / rate whatever happened to earlier ones, and its latency
is measured from that scheduled time (so a slow server cannot hide its queue: no coordinated
omission). Each request is ``POST /payments`` (API key check, Idempotency-Key record, the
real-time guard, the credit-pay hold on the ledger and audit log, the decision row) through
uvicorn on 127.0.0.1. Customers and merchants are spread so the velocity rules (5 purchases per
customer per 10 minutes, 300 per merchant per minute) do not turn the load into declines.

Anchor in the same run: ``GET /health`` (HTTP + one database round trip) at the top rate.

    python benchmarks/api_load.py [--rates 100,200,400] [--seconds 8] [--workers 2]

Prints one JSON object. Needs PostgreSQL (DUOWEI_TEST_PG_URL, default the test server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from typing import Any, Final

import httpx
import psycopg

from duowei.api.auth import Role, mint_key
from duowei.clock import SystemClock
from duowei.db import open_database
from duowei.services.credit_pay import CreditPayService

PG_URL: Final = os.environ.get(
    "DUOWEI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUESTS_MAX: Final = 20_000  # bound on one run
IN_FLIGHT_MAX: Final = 512
PER_CUSTOMER: Final = 4  # under the 5-per-10-minutes velocity rule
PER_MERCHANT_PER_S: Final = 4  # under 300 per minute
STARTUP_S_MAX: Final = 60
WARMUP_ROUNDS: Final = 4


def _admin(sql: str) -> None:
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def setup(url: str, *, customers: int, merchants: int) -> list[str]:
    db = open_database(url)
    clock = SystemClock()
    svc = CreditPayService(db, clock)
    for no in range(1, customers + 1):
        out = svc.open_line(customer_no=no, credit_limit_fen=5_000_000, ref=f"open.{no}")
        assert out.ok, out
    with db.transaction() as uow:
        tokens = [
            mint_key(uow, clock, role=Role.MERCHANT, subject=f"m{i}").token
            for i in range(merchants)
        ]
    db.dispose()
    return tokens


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DUOWEI_DATABASE_URL": url,
        "DUOWEI_RATE_PER_S": "100000",
        "DUOWEI_RATE_BURST": "100000",
        "DUOWEI_SESSION_SECRET": "b" * 32,
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "duowei.api.server:app", "--factory", "--host",
        "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + STARTUP_S_MAX
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not start")


async def open_loop(
    client: httpx.AsyncClient, rate: float, seconds: float, make: Any
) -> dict[str, Any]:
    n = min(int(rate * seconds), REQUESTS_MAX)
    latencies: list[float] = []
    codes: dict[str, int] = {}
    gate = asyncio.Semaphore(IN_FLIGHT_MAX)

    async def one(i: int, at: float) -> None:
        method, path, headers, body = make(i)
        async with gate:
            try:
                r = await client.request(method, path, headers=headers, json=body)
                label = str(r.status_code)
                if r.status_code in (200, 201) and body is not None:
                    label += "" if r.json().get("ok") else ":refused"
            except httpx.HTTPError as exc:
                label = type(exc).__name__
        latencies.append((time.perf_counter() - at) * 1000)
        codes[label] = codes.get(label, 0) + 1

    t0 = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {
        "offered_per_s": rate,
        "n": n,
        "completed_per_s": round(n / elapsed, 1),
        "latency_ms_p50": round(pct(latencies, 0.5), 2),
        "latency_ms_p99": round(pct(latencies, 0.99), 2),
        "codes": codes,
    }


async def run(port: int, rates: list[float], seconds: float, tokens: list[str]) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=IN_FLIGHT_MAX, max_keepalive_connections=IN_FLIGHT_MAX)
    out: dict[str, Any] = {"authorize": []}
    customer = [0]
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Warm-up, not measured: each worker verifies each key once with argon2id (slow on
        # purpose) and then remembers it; a merchant may read payments, so this authenticates.
        for _ in range(WARMUP_ROUNDS):
            await asyncio.gather(
                *(client.get("/payments/none", headers={"Authorization": f"Bearer {t}"})
                  for t in tokens)
            )  # fmt: skip
        for rate in rates:
            run_id = uuid.uuid4().hex[:8]

            def make(i: int, run_id: str = run_id) -> Any:
                no = customer[0] // PER_CUSTOMER + 1
                customer[0] += 1
                token = tokens[i % len(tokens)]
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{run_id}.{i}"}
                body = {"customer_no": no, "amount": {"amount": "12.34", "currency": "CNY"}}
                return "POST", "/payments", headers, body

            out["authorize"].append(await open_loop(client, rate, seconds, make))
        top = max(rates)
        out["anchor_health"] = await open_loop(
            client, top, seconds, lambda i: ("GET", "/health", {}, None)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,400")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    total = int(sum(rates) * args.seconds)
    customers = total // PER_CUSTOMER + 1
    merchants = max(4, int(max(rates) / PER_MERCHANT_PER_S) + 1)
    schema = f"bench_api_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    proc = None
    try:
        t = time.perf_counter()
        tokens = setup(url, customers=customers, merchants=merchants)
        setup_s = time.perf_counter() - t
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        proc = start_server(url, port, args.workers)
        result = asyncio.run(run(port, rates, args.seconds, tokens))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        _admin(f"DROP SCHEMA {schema} CASCADE")
    print(
        json.dumps(
            {
                "benchmark": "api_load",
                "when": datetime.now().isoformat(timespec="seconds"),
                "cpus": os.cpu_count(),
                "workers": args.workers,
                "seconds_per_rate": args.seconds,
                "customers": customers,
                "merchants": merchants,
                "setup_s": round(setup_s, 1),
                "target": ">= 1000 authorizations/s at p99 <= 50 ms",
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
