"""clientreg.report: the one mapping from the core's Outcome (or Plan) to the status every front end shows.

The rule it pins: ``reason``/``message`` describe the state after the run, so a run that acted and left the
client ready and synced says InSync with the state, never InSync next to "registering a new client".
"""

from __future__ import annotations

from datetime import timedelta

from test_engine import NOW
from test_policies import desired, present, record_for

from clientreg.execute import Event, Outcome
from clientreg.observation import Observation, Observed
from clientreg.policies import plan
from clientreg.reasons import Reason
from clientreg.report import drifted_fields, of_outcome, of_plan


def test_a_run_that_registered_reports_in_sync_with_the_state_not_the_action() -> None:
    d = desired()
    record = record_for(d)
    outcome = Outcome(record, Reason.NOT_REGISTERED, "client c1 matches its spec", ready=True, synced=True,
                      events=[Event(Reason.NOT_REGISTERED, "registering a new client: client c1")],
                      next_due=NOW + timedelta(hours=1))
    status = of_outcome(outcome)
    assert (status.ready, status.synced, status.reason) == (True, True, str(Reason.IN_SYNC))
    assert status.message == "client c1 matches its spec" and "registering" not in status.message
    assert status.acted == str(Reason.NOT_REGISTERED)  # why it acted: told apart, not as the status
    assert status.next_due == NOW + timedelta(hours=1) and status.due(NOW + timedelta(hours=2))
    assert not status.due(NOW)


def test_a_standing_fact_keeps_its_own_reason() -> None:
    d = desired()
    outcome = Outcome(record_for(d), Reason.REFUSED, "the AS did not keep declared values: scope", ready=True,
                      synced=False)
    status = of_outcome(outcome)
    assert (status.ready, status.synced, status.reason) == (True, False, str(Reason.REFUSED))
    assert status.acted is None and status.message.startswith("the AS did not keep")


def test_a_plan_with_nothing_to_do_is_in_sync() -> None:
    d = desired()
    status = of_plan(plan(d, record_for(d), present(d), NOW), d, record_for(d), NOW)
    assert (status.ready, status.synced, status.reason) == (True, True, str(Reason.IN_SYNC))


def test_a_plan_shows_drift_and_the_fields_that_drifted() -> None:
    d = desired()
    the_plan = plan(d, record_for(d), present(d, client_name="tampered"), NOW)
    status = of_plan(the_plan, d, record_for(d), NOW)
    assert (status.ready, status.synced, status.reason) == (True, False, str(Reason.DRIFT))
    assert drifted_fields(the_plan) == ("client_name",)


def test_a_plan_for_a_client_the_as_lost_is_not_ready() -> None:
    d = desired()
    the_plan = plan(d, record_for(d), Observation(Observed.GONE), NOW)
    status = of_plan(the_plan, d, record_for(d), NOW)
    assert (status.ready, status.synced, status.reason) == (False, False, str(Reason.CLIENT_GONE))
    assert drifted_fields(the_plan) == ()


def test_a_log_of_runs_says_why_a_run_acted_only_when_it_ended_in_sync() -> None:
    d = desired()
    acted = Outcome(record_for(d), Reason.NOT_REGISTERED, "client c1 matches its spec", ready=True, synced=True,
                    events=[Event(Reason.NOT_REGISTERED, "registering a new client: client c1")])
    assert of_outcome(acted).headline == str(Reason.NOT_REGISTERED)
    idle = Outcome(record_for(d), Reason.IN_SYNC, "client c1 matches its spec", ready=True, synced=True)
    assert of_outcome(idle).headline == str(Reason.IN_SYNC)
    waiting = Outcome(record_for(d), Reason.DOCUMENT_NOT_PUBLISHED, "not served yet", ready=False, synced=False,
                      events=[Event(Reason.NOT_REGISTERED, "registering a new client: client c1")])
    assert of_outcome(waiting).headline == str(Reason.DOCUMENT_NOT_PUBLISHED)
