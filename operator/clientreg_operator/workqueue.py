"""A work queue with controller-runtime's semantics, on asyncio.

- A key waits in the queue at most once, however many events asked for it (the dirty set): a burst of
  watch events about one object is one reconcile.
- A key is never handed to two workers at once: one added while it is being processed waits until
  :meth:`done`, then goes back in the queue.
- Each key has at most one due time (:meth:`add_after` replaces it, :meth:`cancel_after` drops it): the
  next drift check, rotation or retry of an object is one timer in one heap, not a task per object.
- :meth:`retry` backs off exponentially per key until :meth:`forget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, backoff_base: float = 1.0, backoff_max: float = 300.0,
                 on_due: Callable[[K], None] | None = None) -> None:
        #: Called with a key whose time has come (default: :meth:`add`): the owner may note why it is queued.
        self.on_due = on_due or self.add
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._timer_changed = asyncio.Event()
        self._failures: dict[K, int] = {}
        self.backoff_base, self.backoff_max = backoff_base, backoff_max

    def __len__(self) -> int:
        return self._ready.qsize()

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.put_nowait(key)

    async def get(self) -> K:
        key = await self._ready.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._ready.put_nowait(key)

    def processing(self, key: K) -> bool:
        return key in self._processing

    # --- delays ---------------------------------------------------------------------------------------------

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` in ``delay`` seconds, instead of whenever it was due before."""
        if delay <= 0:
            self._due.pop(key, None)
            self.on_due(key)
            return
        due = asyncio.get_running_loop().time() + delay
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._timer_changed.set()

    def cancel_after(self, key: K) -> None:
        self._due.pop(key, None)  # its heap entry is skipped when it comes up

    def due(self, key: K) -> float | None:
        """Loop time ``key`` is next due, if it is scheduled."""
        return self._due.get(key)

    def retry(self, key: K) -> float:
        """Add ``key`` again after its next backoff delay (doubling per failure); returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = float(min(self.backoff_max, self.backoff_base * 2.0 ** failures))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """``key`` succeeded (or is gone): its next failure starts the backoff again."""
        self._failures.pop(key, None)

    async def run_timers(self) -> None:
        """Move due keys into the queue, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._due.get(key) == due:  # else replaced or cancelled since
                    del self._due[key]
                    self.on_due(key)
            if len(self._heap) > 2 * len(self._due) + 64:  # many replaced entries: drop them
                self._heap = [entry for entry in self._heap if self._due.get(entry[2]) == entry[0]]
                heapq.heapify(self._heap)
            self._timer_changed.clear()
            timeout = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), timeout)
