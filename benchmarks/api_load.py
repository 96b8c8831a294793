"""HTTP authorizations against PostgreSQL: throughput, p50 and p99 at fixed arrival rates.

Open loop: request i is sent at t0 + i / rate whatever happened to earlier ones, and its latency
is measured from that scheduled time (so a slow server cannot hide its queue: no coordinated
omission). Each request is ``POST /payments`` (bearer check, Idempotency-Key record, the
real-time guard, the credit-pay hold on the ledger and audit log, the decision row) through
uvicorn on 127.0.0.1. Customers and merchants are spread so the velocity rules (5 purchases per
customer per 10 minutes, 300 per merchant per minute) do not turn the load into declines: each
customer buys at most ``PER_CUSTOMER`` times a run, the customers taken in turn (at 1,000/s for
20 s, a customer's purchases are about 10 s apart). ``--adjacent`` sends each customer's
purchases back to back instead (1 ms apart at 1,000/s): a burst on one credit line, whose row
the two workers' groups then lock in turn.

The client shares the machine with the server and PostgreSQL, so it is lean: raw HTTP/1.1 on
keep-alive connections (an ``asyncio.Protocol`` per connection on uvloop; a connection carries
one request at a time and a new one is opened when all are busy, up to ``IN_FLIGHT_MAX``). The
CPU seconds of the client and of the server's processes are reported per rate, so the share of
the machine each took is visible, and so are the PostgreSQL backends serving the server's
connections (from /proc, matched by socket: other sessions on the same PostgreSQL are left
out). ``--auth oauth`` authenticates with short-lived access tokens
from ``POST /oauth/token`` instead of API keys.

The server runs the recommended set-up of several workers: Redis for the shared rate limits
and velocity windows (``--redis``, default ``redis://127.0.0.1:6379/14``; ``--redis none``: each
worker keeps its own). Each run's customers have numbers of their own (a random base), so the
windows an earlier run left in Redis do not count against this one. The CPU of redis-server
(all its clients) per request, the load average, the CPU steal and the p99 and max of the
requests scheduled in each second are reported too.

``--variants 'a:ENV=V,ENV=V;b:...' --repeats N`` compares servers on the same data: each
variant's server (its environment added; ``PYTHONPATH=<a checkout's src>`` runs other code) in
turn, the order reversed every other repeat (ABBA), the set-up paid once.

Anchor in the same run: ``GET /health`` (HTTP + one database round trip) at the top rate.

    python benchmarks/api_load.py [--rates 100,200,400] [--seconds 8] [--warmup-seconds 3]
                                  [--workers 2]
                                  [--auth apikey|oauth] [--health-rate R (-1: none)]
                                  [--redis URL|none] [--variants ...] [--repeats N]
                                  [--adjacent]

Prints one JSON object. Needs PostgreSQL (DUOWEI_TEST_PG_URL, default the test server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final

import psutil
import psycopg

from duowei.api.auth import Role, hasher, mint_key
from duowei.clock import SystemClock
from duowei.db import open_database, vacuum_catalogs
from duowei.services.credit_pay import CreditPayService

PG_URL: Final = os.environ.get(
    "DUOWEI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUESTS_MAX: Final = 40_000  # bound on one run
IN_FLIGHT_MAX: Final = 512
TIMEOUT_S: Final = 30.0  # a request not answered by then counts as a timeout
PER_CUSTOMER: Final = 4  # under the 5-per-10-minutes velocity rule
PER_MERCHANT_PER_S: Final = 4  # under 300 per minute
STARTUP_S_MAX: Final = 60
WARMUP_ROUNDS_MAX: Final = 40
WARMUP_CLEAN_ROUNDS: Final = 2  # rounds in a row with no key verified anew
WARMUP_BATCH: Final = 8
WARMUP_TIMEOUT_S: Final = 300.0  # argon2 on a busy machine; not measured
HOST: Final = "127.0.0.1"
REDIS_URL_DEFAULT: Final = "redis://127.0.0.1:6379/14"
CUSTOMERS_PER_RUN_MAX: Final = 1_000_000
CUSTOMER_BASES: Final = 100_000  # customer numbers stay below 1e11 (the API allows 1e12)
TOKENS_REUSE_S: Final = 400.0
SETUP_THREADS: Final = 4
SETUP_CHUNK: Final = 100  # lines opened per setup transaction

Request = tuple[str, str, dict[str, str], bytes | None]  # method, path, headers, body


def _admin(sql: str) -> None:
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (Content-Length bodies)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter.set_exception(ValueError("a response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.waiter.set_result((int(head[9:12]), body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        try:
            return await self.waiter
        finally:
            self.waiter = None


class Client:
    """A pool of keep-alive connections to one host."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: deque[HttpConnection] = deque()
        self.opened = 0

    async def _connection(self, *, fresh: bool = False) -> HttpConnection:
        while self.idle and not fresh:
            conn = self.idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(HttpConnection, HOST, self.port)
        self.opened += 1
        return conn

    async def send(
        self, req: Request, *, timeout_s: float = TIMEOUT_S, fresh: bool = False
    ) -> tuple[int, bytes]:
        """``fresh``: on a new connection, closed after (the kernel hands each new connection to
        one of the server's workers)."""
        method, path, headers, body = req
        lines = [f"{method} {path} HTTP/1.1", f"host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"content-length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        conn = await self._connection(fresh=fresh)
        try:
            answer = await asyncio.wait_for(conn.request(raw), timeout_s)
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            raise
        if fresh and conn.transport is not None:
            conn.transport.close()
        else:
            self.idle.append(conn)
        return answer

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


def setup(url: str, *, customers: int, merchants: int, base: int) -> list[str]:
    """Lines for customers ``base + 1 .. base + customers`` and one merchant key each."""
    db = open_database(url)
    clock = SystemClock()
    svc = CreditPayService(db, clock)

    def open_line(no: int, uow: Any = None) -> None:
        out = svc.open_line(customer_no=no, credit_limit_fen=5_000_000, ref=f"open.{no}", uow=uow)
        assert out.ok, out

    def open_lines(first: int) -> None:
        # Many lines a transaction: setup is not measured, and one commit a line made it the
        # longest part of a run.
        with db.transaction() as uow:
            for no in range(first, min(first + SETUP_CHUNK, base + customers + 1)):
                open_line(no, uow)

    open_line(base + 1)  # alone: the first line also creates the platform's accounts
    with ThreadPoolExecutor(SETUP_THREADS) as pool:  # PostgreSQL works while Python waits
        list(pool.map(open_lines, range(base + 2, base + customers + 1, SETUP_CHUNK)))
    with db.transaction() as uow:
        tokens = [
            mint_key(uow, clock, role=Role.MERCHANT, subject=f"m{i}").token
            for i in range(merchants)
        ]
    db.dispose()
    return tokens


def start_server(
    url: str, port: int, workers: int, extra_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DUOWEI_DATABASE_URL": url,
        "DUOWEI_RATE_PER_S": "100000",
        "DUOWEI_RATE_BURST": "100000",
        # Fixed for the run: access tokens stay valid across the variants' servers.
        "DUOWEI_SESSION_SECRET": "b" * 32,
        **extra_env,
    }
    env = {k: v for k, v in env.items() if v != ""}  # an empty value unsets (no Redis)
    cmd = [
        sys.executable, "-m", "uvicorn", "duowei.api.server:app", "--factory", "--host", HOST,
        "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http",
        "httptools", "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", "120",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + STARTUP_S_MAX
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not start")


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def postgres_cpu_s() -> dict[int, float]:
    """CPU seconds of every PostgreSQL process on this machine, by pid (read from /proc)."""
    out: dict[int, float] = {}
    for p in psutil.process_iter(["name"]):
        if p.info["name"] == "postgres":
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.Error:
                pass
    return out


def backends_of(server: list[psutil.Process]) -> set[int]:
    """The PostgreSQL backends serving this server: their peer is one of its sockets. Other
    engineers' sessions on the same PostgreSQL are not counted."""
    ports = set()
    for p in server:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in p.net_connections("tcp") if c.raddr}
    pids = set()
    for p in psutil.process_iter(["name"]):
        if p.info["name"] != "postgres":
            continue
        try:
            if any(c.raddr and c.raddr.port in ports for c in p.net_connections("tcp")):
                pids.add(p.pid)
        except psutil.Error:
            pass
    return pids


def redis_cpu_s() -> float:
    """CPU seconds of the redis-server processes on this machine (0 when there are none)."""
    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] == "redis-server":
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def steal_ticks() -> int:
    """The machine's CPU steal so far (the 8th number of /proc/stat's cpu line), in ticks."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def open_loop(
    client: Client, rate: float, seconds: float, make: Callable[[int], Request], server: Any
) -> dict[str, Any]:
    n = min(int(rate * seconds), REQUESTS_MAX)
    latencies: list[float] = []
    by_second: list[list[float]] = [[] for _ in range(int(n / rate) + 1)]
    codes: dict[str, int] = {}
    gate = asyncio.Semaphore(IN_FLIGHT_MAX)

    async def one(i: int, at: float) -> None:
        req = make(i)
        async with gate:
            try:
                status, body = await client.send(req)
                label = str(status)
                if status in (200, 201) and req[3] is not None:
                    label += "" if json.loads(body).get("ok") else ":refused"
            except (OSError, ValueError, TimeoutError, RuntimeError) as exc:  # Runtime: closed
                label = type(exc).__name__
        latency_ms = (time.perf_counter() - at) * 1000
        latencies.append(latency_ms)
        by_second[int(i / rate)].append(latency_ms)  # by scheduled second
        codes[label] = codes.get(label, 0) + 1

    server_cpu0, client_cpu0, pg_cpu0 = cpu_s(server), own_cpu_s(), postgres_cpu_s()
    redis_cpu0, steal0 = redis_cpu_s(), steal_ticks()
    load0, opened0 = os.getloadavg()[0], client.opened
    # The client is the instrument: a pause of its own would count as the server's latency.
    # A full collection over the step's tasks and buffers, as it became due near the end of a
    # 1,000/s step, put every request of that second at about 100 ms.
    gc.collect()
    gc.disable()
    print(f"api_load: {rate:g}/s for {seconds:g} s", file=sys.stderr, flush=True)
    try:
        t0 = time.perf_counter() + 0.05
        tasks = []
        i = 0
        while i < n:
            now = time.perf_counter()
            # Everything due is sent now (a coarse timer never thins the offered rate).
            while i < n and t0 + i / rate <= now:
                tasks.append(asyncio.create_task(one(i, t0 + i / rate)))
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
    pg_cpu1, redis_cpu1, steal1 = postgres_cpu_s(), redis_cpu_s(), steal_ticks()
    # A backend opened during the step counts from zero.
    pg_s = sum(pg_cpu1.get(b, 0.0) - pg_cpu0.get(b, 0.0) for b in backends_of(server))
    ok = sum(v for k, v in codes.items() if k in ("200", "201"))
    return {
        "offered_per_s": rate,
        "n": n,
        "completed_per_s": round(n / elapsed, 1),
        "ok_per_s": round(ok / elapsed, 1),
        "latency_ms_p50": round(pct(latencies, 0.5), 2),
        "latency_ms_p99": round(pct(latencies, 0.99), 2),
        "latency_ms_max": round(max(latencies), 2),
        "codes": codes,
        "server_cpu_ms_per_request": round((cpu_s(server) - server_cpu0) * 1000 / n, 3),
        "client_cpu_ms_per_request": round((own_cpu_s() - client_cpu0) * 1000 / n, 3),
        "postgres_cpu_ms_per_request": round(pg_s * 1000 / n, 3),
        # Every redis-server on the machine (other users of it included).
        "redis_cpu_ms_per_request": round((redis_cpu1 - redis_cpu0) * 1000 / n, 3),
        "load_1min_before": round(load0, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "steal_ticks": steal1 - steal0,
        "connections_opened": client.opened - opened0,
        # p99 and max of the requests scheduled in each second: where the tail sits in time.
        "p99_max_ms_by_second": [
            [round(pct(b, 0.99), 1), round(max(b), 1)] for b in by_second if b
        ],
    }


async def oauth_tokens(client: Client, keys: list[str]) -> list[str]:
    out = []
    for key in keys:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_secret": key})
        status, body = await client.send(
            (
                "POST",
                "/oauth/token",
                {"content-type": "application/x-www-form-urlencoded"},
                form.encode(),
            )
        )
        assert status == 200, body
        out.append(str(json.loads(body)["access_token"]))
    return out


def argon2_verify_s() -> float:
    """One argon2id verification with the server's parameters, on this machine."""
    keys = hasher()
    stored = keys.hash("x" * 32)
    t = time.perf_counter()
    keys.verify(stored, "x" * 32)
    return time.perf_counter() - t


async def warm_up(client: Client, tokens: list[str]) -> None:
    """Not measured: every worker verifies every API key once with argon2id (slow on purpose)
    and then remembers it. Each request goes on a new connection, which the kernel hands to
    either worker, so rounds repeat until ``WARMUP_CLEAN_ROUNDS`` in a row answer every key
    faster than half a verification. Without this, keys left for the measured step cost it
    about 0.1 s of CPU each per worker and the first rate collapsed (207/s at 500/s offered)."""
    slow_s = argon2_verify_s() / 2
    clean = 0
    for _ in range(WARMUP_ROUNDS_MAX):
        slowest_s = 0.0
        for at in range(0, len(tokens), WARMUP_BATCH):

            async def timed(token: str) -> float:
                t = time.perf_counter()
                # A merchant may read payments, so this authenticates.
                req = ("GET", "/payments/none", {"authorization": f"Bearer {token}"}, None)
                await client.send(req, timeout_s=WARMUP_TIMEOUT_S, fresh=True)
                return time.perf_counter() - t

            batch = tokens[at : at + WARMUP_BATCH]
            slowest_s = max(slowest_s, *await asyncio.gather(*(timed(t) for t in batch)))
        clean = clean + 1 if slowest_s < slow_s else 0
        if clean >= WARMUP_CLEAN_ROUNDS:
            return
    raise RuntimeError(f"warm-up: keys still verified anew after {WARMUP_ROUNDS_MAX} rounds")


async def run(
    port: int,
    rates: list[float],
    seconds: float,
    tokens: list[str],
    *,
    warmup_s: float,
    health_rate: float,
    server: list[psutil.Process],
    next_customer: Callable[[], int],
) -> dict[str, Any]:
    out: dict[str, Any] = {"authorize": []}
    client = Client(port)

    def authorizations() -> Callable[[int], Request]:
        run_id = uuid.uuid4().hex[:8]

        def make(i: int) -> Request:
            headers = {
                "authorization": f"Bearer {tokens[i % len(tokens)]}",
                "idempotency-key": f"{run_id}.{i}",
                "content-type": "application/json",
            }
            body = {
                "customer_no": next_customer(),
                "amount": {"amount": "12.34", "currency": "CNY"},
            }
            return "POST", "/payments", headers, json.dumps(body).encode()

        return make

    try:
        await warm_up(client, tokens)
        if warmup_s > 0 and rates:
            # Not measured, reported apart: a server that has just started (its statements not
            # yet prepared, its caches and groups cold) answers its first second of a 1,000/s
            # step at a p99 of 50-125 ms against 25-35 ms after.
            out["warmup"] = await open_loop(client, rates[0], warmup_s, authorizations(), server)
        for rate in rates:
            step = await open_loop(client, rate, seconds, authorizations(), server)
            out["authorize"].append(step)
        if health_rate > 0:
            out["anchor_health"] = await open_loop(
                client, health_rate, seconds, lambda i: ("GET", "/health", {}, None), server
            )
    finally:
        client.close()
    return out


async def bearer_tokens(port: int, keys: list[str], auth: str) -> list[str]:
    if auth != "oauth":
        return keys
    client = Client(port)
    try:
        return await oauth_tokens(client, keys)
    finally:
        client.close()


def parse_variants(text: str) -> list[tuple[str, dict[str, str]]]:
    """``name:K=V,K=V;name2:...`` -> [(name, env)]; an empty value unsets the variable."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, assigns = part.partition(":")
        env = dict(a.split("=", 1) for a in filter(None, assigns.split(",")))
        out.append((name, env))
    return out


def serve_and_run(
    url: str, workers: int, env: dict[str, str], body: Callable[[int, list[psutil.Process]], Any]
) -> Any:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = int(s.getsockname()[1])
    proc = start_server(url, port, workers, env)
    try:
        parent = psutil.Process(proc.pid)
        server = [parent, *parent.children(recursive=True)]
        return body(port, server)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,400")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=3.0,
        help="authorizations at the first rate before the measured steps (reported as "
        "'warmup'; 0: none)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--auth", choices=("apikey", "oauth"), default="apikey")
    parser.add_argument(
        "--health-rate", type=float, default=0.0, help="default: the top rate; -1: no anchor"
    )
    parser.add_argument(
        "--redis",
        default=REDIS_URL_DEFAULT,
        help="DUOWEI_REDIS_URL for the server (shared rate limits and velocity windows, the "
        "recommended set-up of several workers); 'none': each worker keeps its own",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="servers to compare, 'name:ENV=V,ENV=V;name2:...' (an empty value unsets), each "
        "run in turn on the same data, --repeats times, the order reversed every other time",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--adjacent",
        action="store_true",
        help="each customer's purchases back to back (one line's row locked by both workers' "
        "groups in turn) instead of the customers in turn",
    )
    args = parser.parse_args()
    import uvloop

    rates = [float(r) for r in args.rates.split(",")]
    variants = parse_variants(args.variants) or [("default", {})]
    redis_url = "" if args.redis == "none" else args.redis
    runs = len(variants) * args.repeats
    total = int(sum(rates) * args.seconds + (rates[0] * args.warmup_seconds if rates else 0)) * runs
    customers = total // PER_CUSTOMER + 1
    merchants = max(4, int(max(rates) / PER_MERCHANT_PER_S) + 1)
    # Customer numbers of their own: the velocity windows in Redis outlive a run (10 minutes),
    # and another run's customers 1..N must not count against this one's.
    base = uuid.uuid4().int % CUSTOMER_BASES * CUSTOMERS_PER_RUN_MAX
    if customers > CUSTOMERS_PER_RUN_MAX:
        raise SystemExit(f"at most {CUSTOMERS_PER_RUN_MAX} customers a run")
    schema = f"apiload_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    results: list[dict[str, Any]] = []
    try:
        t = time.perf_counter()
        keys = setup(url, customers=customers, merchants=merchants, base=base)
        setup_s = time.perf_counter() - t
        customer = [0]

        def next_customer() -> int:
            customer[0] += 1
            if args.adjacent:
                return base + (customer[0] - 1) // PER_CUSTOMER + 1
            return base + (customer[0] - 1) % customers + 1

        tokens: list[str] = []
        tokens_at = -math.inf
        for rep in range(args.repeats):
            for name, env in variants if rep % 2 == 0 else variants[::-1]:
                server_env = {"DUOWEI_REDIS_URL": redis_url, **env}

                def body(port: int, server: list[psutil.Process]) -> Any:
                    nonlocal tokens, tokens_at
                    if time.monotonic() - tokens_at > TOKENS_REUSE_S:  # they last 600 s
                        tokens = uvloop.run(bearer_tokens(port, keys, args.auth))
                        tokens_at = time.monotonic()
                    return uvloop.run(
                        run(
                            port,
                            rates,
                            args.seconds,
                            tokens,
                            warmup_s=args.warmup_seconds,
                            health_rate=args.health_rate or max(rates),
                            server=server,
                            next_customer=next_customer,
                        )
                    )

                out = serve_and_run(url, args.workers, server_env, body)
                results.append({"variant": name, "repeat": rep, "env": server_env, **out})
    finally:
        _admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        vacuum_catalogs(PG_URL)  # the dropped schema's catalog rows, where autovacuum is off
    one = results[0] if len(results) == 1 else {"runs": results}
    print(
        json.dumps(
            {
                "benchmark": "api_load",
                "when": datetime.now().isoformat(timespec="seconds"),
                "cpus": os.cpu_count(),
                "workers": args.workers,
                "auth": args.auth,
                "redis": redis_url or None,
                "seconds_per_rate": args.seconds,
                "customers": customers,
                "customer_order": "adjacent" if args.adjacent else "in turn",
                "merchants": merchants,
                "setup_s": round(setup_s, 1),
                "load_1min_after": round(os.getloadavg()[0], 2),
                "target": ">= 1000 authorizations/s at p99 <= 50 ms",
                **one,
            }
        )
    )


if __name__ == "__main__":
    main()
