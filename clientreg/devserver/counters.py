"""Counts of requests by method and route template, so tests can assert how chatty a client was."""

from __future__ import annotations

import threading
from collections import Counter


class RequestCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, method: str, route: str) -> None:
        with self._lock:
            self._counts[f"{method} {route}"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
