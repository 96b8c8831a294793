"""What a running API holds: the database, the clock, the services and the security parts.

Built once per process from an ``ApiConfig`` (read from the environment at the edge by
``duowei serve``), then handed to the routers through ``request.app.state``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from duowei.api.auth import KeyVerifier, SessionSigner
from duowei.api.ratelimit import BURST_DEFAULT, RATE_PER_S_DEFAULT, LocalBuckets, RateLimiter
from duowei.clock import Clock
from duowei.config import DEFAULT_LOG_ORIGIN, default_key_path
from duowei.db import Database, open_database
from duowei.ledger.group import GroupCommitter
from duowei.realtime import LocalCounters, RealtimeGuard, RedisCounters, ruleset_for
from duowei.realtime.model import load_model as load_anomaly_model
from duowei.services.cash_loan import CashLoanService
from duowei.services.checkout import CheckoutService
from duowei.services.credit_pay import CreditPayService
from duowei.services.product_store import ProductCatalog

SESSION_SECRET_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class ApiConfig:
    database_url: str
    clock: Clock
    model_dir: Path | None = None  # a credit-model artefact (``duowei score train``)
    redis_url: str | None = None  # shared rate limits and real-time counters
    rate_per_s: float = RATE_PER_S_DEFAULT
    burst: int = BURST_DEFAULT
    log_key_path: Path | None = None
    log_origin: str = DEFAULT_LOG_ORIGIN
    session_secret: bytes | None = None
    cookie_secure: bool = True
    migrate: bool = True
    # Threads that may use a pooled connection at once (``deps.in_db_thread``); the pool keeps
    # that many plus a few for the group committer and the revocation watch, so a burst never
    # opens and closes overflow connections (a new PostgreSQL backend is a fork).
    db_threads: int = 16
    pool_size: int = 20
    # POST /payments through a GroupCommitter: concurrent authorizations share transactions.
    group_commit: bool = True
    # Groups in flight at once in this process (``GroupCommitter(committers=...)``): with two,
    # one gathers and prepares while the other posts and commits. Two gave a worse p99 at
    # 1,000/s with Redis in interleaved runs (docs/api.md), so one is the default.
    group_committers: int = 1
    # FastAPI's OpenTelemetry bridge. Off, it costs nothing; on, every request asks three
    # global providers whether they are configured (about a tenth of a worker's CPU, measured).
    telemetry: bool = False


@dataclass
class ApiContext:
    config: ApiConfig
    db: Database
    clock: Clock
    credit_pay: CreditPayService
    cash_loan: CashLoanService
    guard: RealtimeGuard
    checkout: CheckoutService
    verifier: KeyVerifier
    limiter: RateLimiter
    sessions: SessionSigner
    log_key_path: Path
    credit_model: Any = None  # duowei.risk.artefact.LoadedModel
    credit_policy: Any = None  # duowei.risk.decision.CreditPolicy
    extras: dict[str, Any] = field(default_factory=dict)
    db_slots: Any = None  # anyio.CapacityLimiter, made in the event loop by deps.in_db_thread

    def close(self) -> None:
        """Stop the group committer's thread (after what was submitted has committed)."""
        if self.checkout.group is not None:
            self.checkout.group.close()


def _limiter(config: ApiConfig) -> RateLimiter:
    if config.redis_url:
        from duowei.api.ratelimit import RedisBuckets

        return RedisBuckets.from_url(
            config.redis_url, rate_per_s=config.rate_per_s, burst=config.burst
        )
    return LocalBuckets(rate_per_s=config.rate_per_s, burst=config.burst)


def build_context(config: ApiConfig) -> ApiContext:
    db = Database(config.database_url, pool_size=config.pool_size)
    if config.migrate:
        db.migrate()
    catalog = ProductCatalog.standard(config.clock.today())
    counters = RedisCounters.from_url(config.redis_url) if config.redis_url else LocalCounters()
    guard = RealtimeGuard(ruleset_for(config.clock.today()), counters, load_anomaly_model())
    # One secret for the session cookies and (through a derived key) the access tokens; with
    # several workers it must be configured, or each worker refuses the others' (duowei serve
    # makes one for its workers when none is set).
    secret = config.session_secret or secrets.token_bytes(SESSION_SECRET_BYTES)
    model = policy = None
    if config.model_dir is not None:
        from duowei.risk.artefact import load_model
        from duowei.risk.decision import load_credit_policy

        model, policy = load_model(config.model_dir), load_credit_policy(None)
    group = (
        GroupCommitter(db, config.clock, committers=config.group_committers)
        if config.group_commit
        else None
    )
    return ApiContext(
        config=config,
        db=db,
        clock=config.clock,
        credit_pay=CreditPayService(db, config.clock, catalog),
        cash_loan=CashLoanService(db, config.clock, catalog),
        guard=guard,
        checkout=CheckoutService(db, config.clock, guard, catalog=catalog, group=group),
        verifier=KeyVerifier(db, clock=config.clock, token_secret=secret),
        limiter=_limiter(config),
        sessions=SessionSigner(secret),
        log_key_path=config.log_key_path or default_key_path(config.database_url),
        credit_model=model,
        credit_policy=policy,
    )


def config_from_env(clock: Clock, database_url: str | None = None) -> ApiConfig:
    """Settings for ``duowei serve`` (the only place the API reads the environment)."""
    from duowei.config import load_settings

    settings = load_settings(database_url)
    model_dir = os.environ.get("DUOWEI_MODEL_DIR")
    secret = os.environ.get("DUOWEI_SESSION_SECRET")
    return ApiConfig(
        database_url=settings.database_url,
        clock=clock,
        model_dir=Path(model_dir) if model_dir else None,
        redis_url=os.environ.get("DUOWEI_REDIS_URL") or None,
        rate_per_s=float(os.environ.get("DUOWEI_RATE_PER_S", RATE_PER_S_DEFAULT)),
        burst=int(os.environ.get("DUOWEI_RATE_BURST", BURST_DEFAULT)),
        log_key_path=settings.log_key_path,
        log_origin=settings.log_origin,
        session_secret=secret.encode() if secret else None,
        cookie_secure=os.environ.get("DUOWEI_COOKIE_SECURE", "1") != "0",
        group_commit=os.environ.get("DUOWEI_GROUP_COMMIT", "1") != "0",
        group_committers=int(os.environ.get("DUOWEI_GROUP_COMMITTERS", "1")),
        telemetry=os.environ.get("DUOWEI_TELEMETRY", "0") == "1",
    )


__all__ = ["ApiConfig", "ApiContext", "build_context", "config_from_env", "open_database"]
