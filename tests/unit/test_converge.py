"""One run of the loop converges (issue 12): create-before-destroy to a fixed point, an outcome that tells
the state after the run, and an observe that leaves the caller's record alone."""

from __future__ import annotations

from datetime import timedelta

from support.fake_as import FakeAS
from test_engine import NOW, Harness, make_client

from clientreg.engine import ActionKind, Desired, Reason, observe, reconcile


def _registered(grace: str) -> tuple[FakeAS, Harness, str]:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client(rotation={"gracePeriod": grace}))
    assert h.stored is not None
    return fake, h, h.stored.client_id


def test_zero_grace_rotation_deletes_the_old_client_in_the_same_run() -> None:
    fake, h, old = _registered("0s")
    the_plan, outcome = h.run(make_client(rotation={"gracePeriod": "0s"}), rotation_request="r1")
    assert [a.kind for a in the_plan.actions] == [ActionKind.REGISTER_REPLACEMENT]
    assert h.stored is not None and h.stored.client_id != old
    # Create before destroy, to the end: the replacement exists and the old client is gone, in ONE apply.
    assert set(fake.clients) == {h.stored.client_id}
    assert h.stored.retiring == [] and outcome.record is not None and outcome.record.retiring == []
    assert any(e.reason == Reason.OLD_CLIENT_DELETED and old in e.message for e in outcome.events)
    # Nothing is left for a second run.
    fake.calls.clear()
    again, _ = h.run(make_client(rotation={"gracePeriod": "0s"}), rotation_request="r1")
    assert not again.actions and fake.writes() == 0


def test_outcome_message_tells_the_state_after_the_run_not_the_last_action() -> None:
    fake, h, old = _registered("1h")
    h.run(make_client(rotation={"gracePeriod": "1h"}), rotation_request="r1")
    assert h.stored is not None
    new = h.stored.client_id
    the_plan, outcome = h.run(make_client(rotation={"gracePeriod": "1h"}), NOW + timedelta(hours=2),
                              rotation_request="r1")
    assert [a.kind for a in the_plan.actions] == [ActionKind.DELETE_RETIRING]
    assert old not in fake.clients
    # What `clientreg get` shows: the client as it is now, not "… is over; deleting it".
    assert "deleting it" not in outcome.message
    assert new in outcome.message and "matches its spec" in outcome.message


def test_outcome_tells_which_old_client_still_retires_and_when_work_is_next_due() -> None:
    fake, h, old = _registered("1h")
    _, outcome = h.run(make_client(rotation={"gracePeriod": "1h"}), rotation_request="r1")
    assert old in fake.clients and old in outcome.message and "retires" in outcome.message
    assert outcome.next_due == NOW + timedelta(hours=1)


def test_observe_does_not_change_the_callers_record() -> None:
    _, h, _ = _registered("1h")
    assert h.stored is not None
    record = h.stored.model_copy(update={"issuer": None, "token_endpoint": None})
    before = record.to_storage()
    observation = observe(record, h.server, h.save)
    assert record.to_storage() == before
    # The endpoints a read fills in go into a copy, saved and handed back.
    assert observation.record is not None and observation.record.token_endpoint is not None
    assert h.stored.token_endpoint == observation.record.token_endpoint


def test_reconcile_does_not_change_the_callers_record() -> None:
    _, h, _ = _registered("1h")
    assert h.stored is not None
    record = h.stored.model_copy(deep=True)
    before = record.to_storage()
    _, outcome = reconcile(Desired.from_client(make_client(clientName="Renamed", rotation={"gracePeriod": "1h"})),
                           record, h.server, h.save, NOW)
    assert record.to_storage() == before
    assert outcome.record is not None and outcome.record.server_metadata["client_name"] == "Renamed"


def test_a_run_registers_at_most_one_client_even_when_the_replacement_is_due_again() -> None:
    # Secrets that live a minute, rotated two hours ahead: every new client is due for rotation at once.
    fake = FakeAS(secret_lifetime=60)
    fake.now = NOW.timestamp()
    h = Harness(fake)
    client = make_client(rotation={"rotateBefore": "2h", "gracePeriod": "0s"})
    h.run(client)
    fake.calls.clear()
    the_plan, outcome = h.run(client)
    assert [a.reason for a in the_plan.actions] == [Reason.NEARING_EXPIRY]
    assert fake.calls["POST /register"] == 1, "the follow-up passes finish work, they never register"
    assert len(fake.clients) == 1 and outcome.record is not None and outcome.record.retiring == []
