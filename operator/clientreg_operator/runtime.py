"""The async side of the operator: one reconcile per object at a time, in worker threads, on schedule.

Kopf calls in from several places (create/update/resume handlers, the per-object daemon, Secret
events); all of them land here, so two reconciles of the same OAuthClient never overlap and every
result updates the same schedule.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .reconciler import Reconciler, Result
from .rollout import restart_consumers

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class _Schedule:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Set when the due time moved (or a reconcile was asked for): the waiting daemon re-reads it.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Loop time of the next reconcile; None: not until something changes.
    due: float | None = None
    #: A reconcile was asked for (request()) that a running one may have missed: run another right after it.
    requested: bool = False


class Runtime:
    def __init__(self, reconciler: Reconciler, *, workers: int = 8, restart_deployments: bool = False) -> None:
        self.reconciler = reconciler
        self.restart_deployments = restart_deployments
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                              thread_name_prefix="reconcile")
        self._schedules: dict[Key, _Schedule] = {}
        #: The last rotate annotation value each object was reconciled promptly for.
        self._rotation_requests: dict[Key, str] = {}

    def _schedule(self, key: Key) -> _Schedule:
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = self._schedules[key] = _Schedule()
        return schedule

    async def _in_thread(self, fn: Callable[..., Result | None], *args: str) -> Result | None:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def reconcile(self, namespace: str, name: str) -> Result:
        key = (namespace, name)
        schedule = self._schedule(key)
        async with schedule.lock:
            schedule.requested = False  # this reconcile reads the object as it is now
            result = await self._in_thread(self.reconciler.reconcile, namespace, name)
        assert result is not None
        self._plan_next(schedule, result)
        if result.rotated and self.restart_deployments and result.secret_name:
            await self._restart(namespace, result.secret_name, result.client_id or "")
        return result

    async def heal(self, namespace: str, name: str) -> None:
        schedule = self._schedule((namespace, name))
        async with schedule.lock:
            result = await self._in_thread(self.reconciler.heal, namespace, name)
        if result is not None:
            self._plan_next(schedule, result)

    async def _restart(self, namespace: str, secret_name: str, client_id: str) -> None:
        try:
            await asyncio.to_thread(restart_consumers, self.reconciler.cluster, namespace, secret_name, client_id)
        except Exception as exc:  # a failed restart must not undo a successful rotation
            log.warning("could not restart consumers of Secret %s/%s: %s", namespace, secret_name, exc)

    def _plan_next(self, schedule: _Schedule, result: Result) -> None:
        loop = asyncio.get_running_loop()
        if schedule.requested:
            schedule.due = loop.time()
        else:
            schedule.due = None if result.requeue_after is None else loop.time() + result.requeue_after
        schedule.changed.set()

    def request_rotation(self, namespace: str, name: str, request: str) -> None:
        """Reconcile soon (through the object's schedule) for a rotate annotation value not acted on yet.

        Once per value: should that rotation fail, its retries follow the backoff like any failure, however
        many watch events the object sees meanwhile."""
        key = (namespace, name)
        if self._rotation_requests.get(key) == request:
            return
        self._rotation_requests[key] = request
        schedule = self._schedule(key)
        schedule.requested = True
        schedule.due = asyncio.get_running_loop().time()
        schedule.changed.set()

    async def keep_on_schedule(self, namespace: str, name: str, stopped: Awaitable[object],
                               is_stopped: Callable[[], bool]) -> None:
        """The daemon body: reconcile whenever the schedule says so, until ``stopped``."""
        key = (namespace, name)
        schedule = self._schedule(key)
        stop_waiter = asyncio.ensure_future(stopped)
        try:
            while not is_stopped():
                loop = asyncio.get_running_loop()
                timeout = None if schedule.due is None else max(0.0, schedule.due - loop.time())
                schedule.changed.clear()
                changed = asyncio.ensure_future(schedule.changed.wait())
                done, _ = await asyncio.wait({changed, stop_waiter}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if stop_waiter in done or is_stopped():
                    return
                if changed in done:
                    continue  # the due time moved: wait again with the new one
                await self.reconcile(namespace, name)
        finally:
            stop_waiter.cancel()

    def forget(self, namespace: str, name: str) -> None:
        self._schedules.pop((namespace, name), None)
        self._rotation_requests.pop((namespace, name), None)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.reconciler.connections.close()
