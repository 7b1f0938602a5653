"""The work queue's controller-runtime semantics: coalescing, one worker per key, one due time per key."""

from __future__ import annotations

import asyncio

from clientreg_operator.workqueue import WorkQueue


def test_a_key_added_many_times_waits_in_the_queue_once() -> None:
    async def scenario() -> tuple[str, int]:
        queue: WorkQueue[str] = WorkQueue()
        for _ in range(5):
            queue.add("a")
        queue.add("b")
        first = await queue.get()
        return first, len(queue)

    assert asyncio.run(scenario()) == ("a", 1)  # "b" only


def test_a_key_added_while_processed_comes_back_only_after_done() -> None:
    async def scenario() -> tuple[int, str]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add(key)  # an event while a worker holds it: no second worker may take it now
        queue.add(key)
        waiting = len(queue)
        queue.done(key)
        return waiting, await asyncio.wait_for(queue.get(), 1)

    assert asyncio.run(scenario()) == (0, "a")


def test_add_after_replaces_the_due_time_instead_of_adding_another() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        fired: list[str] = []
        queue.on_due = fired.append
        timers = asyncio.create_task(queue.run_timers())
        queue.add_after("a", 0.05)
        queue.add_after("a", 0.3)  # the newer schedule wins: no wake-up at 0.05
        queue.add_after("b", 0.05)
        queue.add_after("c", 0.05)
        queue.cancel_after("c")
        await asyncio.sleep(0.15)
        early = list(fired)
        await asyncio.sleep(0.4)
        timers.cancel()
        return [*early, "|", *fired]

    assert asyncio.run(scenario()) == ["b", "|", "b", "a"]


def test_retries_back_off_exponentially_per_key_until_forgotten() -> None:
    async def scenario() -> list[float]:
        queue: WorkQueue[str] = WorkQueue(backoff_base=1.0, backoff_max=5.0)
        delays = [queue.retry("a") for _ in range(4)]
        other = queue.retry("b")
        queue.forget("a")
        return [*delays, other, queue.retry("a")]

    assert asyncio.run(scenario()) == [1.0, 2.0, 4.0, 5.0, 1.0, 1.0]
