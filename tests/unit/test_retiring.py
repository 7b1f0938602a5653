"""The engine's side of a 401 on deleting a retiring client, as every front end (CLI, operator, Pulumi)
sees it: kept, warned about, retried later; fatal only to deleting the resource itself."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from support.fake_as import FakeAS
from test_engine import NOW, Harness, make_client

from clientreg.engine import Reason
from clientreg.retiring import DELETE_REFUSED, RetiringDeleteRefused, retry_delay


def _rotated(fake: FakeAS) -> tuple[Harness, str]:
    """A client rotated a minute ago with a grace period of a minute: its old client is due for deletion at
    NOW. (With gracePeriod 0s the rotating run itself deletes the old client: see test_converge.py.)"""
    h = Harness(fake)
    client = make_client(rotation={"gracePeriod": "1m"})
    h.run(client, NOW - timedelta(minutes=2))
    h.run(client, NOW - timedelta(minutes=1), rotation_request="r1")
    assert h.stored is not None
    return h, h.stored.retiring[0].client_id


def test_retries_back_off_from_five_minutes_to_a_day() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [timedelta(minutes=5), timedelta(minutes=10),
                                                  timedelta(minutes=20)]
    assert retry_delay(10) == retry_delay(10_000) == timedelta(hours=24)


def test_a_401_keeps_the_retiring_client_and_the_outcome_says_so_until_it_is_deleted() -> None:
    fake = FakeAS()
    h, old = _rotated(fake)
    real_rat = fake.rats[old]
    fake.rats[old] = "rotated-by-someone-else"
    _, outcome = h.run(make_client(rotation={"gracePeriod": "1m"}), rotation_request="r1")
    assert h.stored is not None and [r.client_id for r in h.stored.retiring] == [old]
    assert h.stored.retiring[0].delete_refusals == 1
    assert h.stored.retiring[0].delete_after == NOW + timedelta(minutes=5)
    (event,) = [e for e in outcome.events if e.reason == DELETE_REFUSED]
    assert event.warning and old in event.message and real_rat not in event.message
    assert outcome.ready and not outcome.synced and outcome.reason == DELETE_REFUSED
    # Before the retry is due nothing is sent, and the outcome still tells.
    fake.calls.clear()
    _, outcome = h.run(make_client(rotation={"gracePeriod": "1m"}), NOW + timedelta(minutes=4),
                       rotation_request="r1")
    assert "DELETE /register/<id>" not in fake.calls and outcome.reason == DELETE_REFUSED
    fake.rats[old] = real_rat
    the_plan, outcome = h.run(make_client(rotation={"gracePeriod": "1m"}), NOW + timedelta(minutes=5),
                              rotation_request="r1")
    assert [a.reason for a in the_plan.actions] == [Reason.GRACE_OVER]
    assert old not in fake.clients and not h.stored.retiring and outcome.synced


def test_deleting_the_resource_fails_while_a_retiring_client_refuses() -> None:
    fake = FakeAS()
    h, old = _rotated(fake)
    fake.rats[old] = "rotated-by-someone-else"
    current = h.stored.client_id if h.stored else ""
    with pytest.raises(RetiringDeleteRefused) as caught:
        h.run(make_client(rotation={"gracePeriod": "1m"}), deleting=True)
    assert old in str(caught.value) and "Orphan" in str(caught.value)
    assert current in fake.clients, "the current client is not deleted while the old one may live"
    assert h.stored is not None and h.stored.retiring[0].delete_refusals == 1


def test_a_401_after_a_delete_whose_answer_was_lost_means_that_delete_worked() -> None:
    fake = FakeAS()
    h, old = _rotated(fake)
    real = fake.handle
    seen_pending: list[bool] = []

    def answer_lost(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            assert h.stored is not None
            seen_pending.append(h.stored.retiring[0].delete_pending)
            real(request)  # the AS deletes the client (and its token) ...
            raise httpx.ReadError("connection reset")  # ... and the answer never arrives
        return real(request)

    fake.handle = answer_lost  # type: ignore[method-assign]
    h.server.http = fake.http()
    _, outcome = h.run(make_client(rotation={"gracePeriod": "1m"}), rotation_request="r1")
    assert seen_pending == [True], "the DELETE is written down before it is sent, and sent once"
    assert old not in fake.clients and h.stored is not None and h.stored.retiring[0].delete_pending
    assert any("will retry" in e.message for e in outcome.events)
    fake.handle = real  # type: ignore[method-assign]
    h.server.http = fake.http()
    _, outcome = h.run(make_client(rotation={"gracePeriod": "1m"}), rotation_request="r1")
    assert not h.stored.retiring and outcome.synced
    assert not [e for e in outcome.events if e.reason == DELETE_REFUSED]
    assert any(old in e.message and "answer was lost" in e.message for e in outcome.events)
