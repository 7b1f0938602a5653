"""Pacing requests: a token bucket for ``requestsPerSecond`` and full-jitter backoff between retries."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["TokenBucket", "full_jitter"]


class TokenBucket:
    """Requests per second for one HttpClient; callers reserve a slot and sleep outside the lock."""

    def __init__(self, rate: float, monotonic: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._monotonic = monotonic
        self._tokens = self.capacity
        self._last = monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token, possibly borrowed from the future; return how long to wait for it."""
        with self._lock:
            now = self._monotonic()
            # max(0, …): a clock that went backwards must not drain the bucket.
            self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        # Monotonic clocks of two processes are unrelated: start full on this side.
        self._tokens = self.capacity
        self._last = self._monotonic()


def full_jitter(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (0-based). Full jitter (AWS architecture blog): spreads the
    retries of many reconcilers apart instead of having them all come back at once."""
    return rng.uniform(0, min(cap, base * (2 ** attempt)))
