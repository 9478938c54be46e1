"""The upload-rate guard: one client cannot starve the others of the service's few scoring slots.

Each client address gets a token bucket (`per_minute` uploads refilled continuously, up to `burst` at once) and
may have at most `in_flight` uploads in progress. An upload over either limit is refused at once with 429 and a
Retry-After, before its body is read. Clients are told apart by their socket address: behind a reverse proxy
every request comes from the proxy, so rate-limit there instead (or raise these limits).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

# Idle clients whose buckets are full are forgotten once this many addresses are tracked.
_MAX_TRACKED_CLIENTS = 10_000


@dataclasses.dataclass(frozen=True)
class RateLimits:
    per_minute: float = 120.0  # 0 turns the guard off
    burst: int = 20
    in_flight: int = 2

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


class UploadRateGuard:
    """Admission control per client; call `admit` before reading an upload and `release` when it is answered."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic):
        self.limits, self.clock = limits, clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, client: str) -> float | None:
        """None when admitted (then `release` must follow), else the seconds to wait before retrying."""
        if not self.limits.enabled:
            return None
        now = self.clock()
        bucket = self._buckets.get(client) or self._new_bucket(client, now)
        refill = (now - bucket.updated) * self.limits.per_minute / 60.0
        bucket.tokens, bucket.updated = min(self.limits.burst, bucket.tokens + refill), now
        if bucket.in_flight >= self.limits.in_flight:
            return 1.0
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) * 60.0 / self.limits.per_minute
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        return None

    def release(self, client: str) -> None:
        bucket = self._buckets.get(client)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1

    def _new_bucket(self, client: str, now: float) -> _Bucket:
        if len(self._buckets) >= _MAX_TRACKED_CLIENTS:
            full_and_idle = [name for name, bucket in self._buckets.items() if bucket.in_flight == 0 and
                             bucket.tokens + (now - bucket.updated) * self.limits.per_minute / 60 >= self.limits.burst]
            for name in full_and_idle:
                del self._buckets[name]
        bucket = self._buckets[client] = _Bucket(tokens=float(self.limits.burst), updated=now)
        return bucket


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
