"""The policy chain (clientreg/policies.py): each policy on its own, then precedence between them.

Records and observations are built by hand: each test states exactly the facts a policy looks at.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.fake_as import FakeAS
from test_engine import NOW, Harness, make_client

from clientreg import keys as keypairs
from clientreg.actions import ActionKind
from clientreg.desired import Desired
from clientreg.observation import Observation, Observed, Published
from clientreg.policies import CHAIN, Context, Fired, Precedence, plan
from clientreg.publish import documents
from clientreg.reasons import BY_NAME, Reason
from clientreg.record import RegistrationRecord, RetiringClient
from clientreg.rfc7591 import ClientInformation

URI = "https://as.example.com/register/c1"


def desired(**spec: Any) -> Desired:
    return Desired.from_client(make_client(**spec))


def record_for(d: Desired, **extra: Any) -> RegistrationRecord:
    base: dict[str, Any] = dict(client_id="c1", registration_client_uri=URI, registration_access_token="rat",
                                spec_hash=d.spec_hash, server_metadata=dict(d.metadata), registered_at=NOW
                                - timedelta(days=1), declared_fields=sorted(d.metadata))
    base.update(extra)
    return RegistrationRecord(**base)


def present(d: Desired, **changes: Any) -> Observation:
    return Observation(Observed.PRESENT, ClientInformation(client_id="c1", metadata={**d.metadata, **changes}))


def fired(d: Desired, record: RegistrationRecord | None, observed: Observation, name: str) -> Fired | None:
    policy = next(p for p in CHAIN if p.name == name)
    return policy.check(Context(d.with_keys(record), record, observed, NOW))


# --- one test per policy --------------------------------------------------------------------------------

def test_deleting_deletes_or_forgets_by_deletion_policy() -> None:
    d = desired()
    r = record_for(d)
    assert fired(d, r, Observation.not_read(), "Deleting") is None
    gone = fired(replace(d, deleting=True), r, Observation.not_read(), "Deleting")
    assert gone is not None and [a.kind for a in gone.actions] == [ActionKind.DELETE] and gone.reason is Reason.DELETED
    kept = fired(replace(d, deleting=True, deletion_policy="Orphan"), r, Observation.not_read(), "Deleting")
    assert kept is not None and [a.kind for a in kept.actions] == [ActionKind.FORGET]
    assert kept.reason is Reason.ORPHANED


def test_not_registered_registers() -> None:
    d = desired()
    result = fired(d, None, Observation.not_read(), "NotRegistered")
    assert result is not None and [a.kind for a in result.actions] == [ActionKind.REGISTER]
    assert fired(d, record_for(d), present(d), "NotRegistered") is None


def test_client_gone_at_the_server_registers_anew() -> None:
    d = desired()
    result = fired(d, record_for(d), Observation(Observed.GONE), "ClientGoneAtServer")
    assert result is not None and result.reason is Reason.CLIENT_GONE
    assert [a.kind for a in result.actions] == [ActionKind.REGISTER] and "c1" in result.message
    assert fired(d, record_for(d), present(d), "ClientGoneAtServer") is None


def test_a_revoked_registration_access_token_replaces_nothing() -> None:
    d = desired()
    result = fired(d, record_for(d), Observation(Observed.TOKEN_REVOKED), "RegistrationAccessTokenRevoked")
    assert result is not None and result.reason is Reason.TOKEN_REVOKED
    assert [a.kind for a in result.actions] == [ActionKind.REPORT] and "c1" in result.message
    assert "adopt" in result.message.lower() and "delete" in result.message
    assert fired(d, record_for(d), present(d), "RegistrationAccessTokenRevoked") is None


def test_metadata_document_changed_republishes_a_cimd_client() -> None:
    url = "https://app.example.com/client.json"
    d = desired(registration="cimd", clientIdUrl=url, grantTypes=["authorization_code"], responseTypes=["code"],
                redirectUris=["https://app.example.com/cb"], tokenEndpointAuthMethod="none", scope="openid")
    r = record_for(d, client_id=url, registration="cimd", registration_client_uri=None)
    assert fired(d, r, Observation.not_read(), "MetadataDocumentChanged") is None
    result = fired(d, record_for(d, client_id=url, registration="cimd", spec_hash="old"), Observation.not_read(),
                   "MetadataDocumentChanged")
    assert result is not None and result.reason is Reason.SPEC_CHANGED
    assert [a.kind for a in result.actions] == [ActionKind.REGISTER]


def test_rotation_requested_registers_a_replacement() -> None:
    d = replace(desired(), rotation_request="r1")
    result = fired(d, record_for(d), present(d), "RotationRequested")
    assert result is not None and [a.kind for a in result.actions] == [ActionKind.REGISTER_REPLACEMENT]
    assert fired(d, record_for(d, rotation_request="r1"), present(d), "RotationRequested") is None


def test_secret_nearing_expiry_registers_a_replacement() -> None:
    d = desired(rotation={"rotateBefore": "1h"})
    soon = int((NOW + timedelta(minutes=30)).timestamp())
    result = fired(d, record_for(d, client_secret="s", client_secret_expires_at=soon), present(d),
                   "SecretNearingExpiry")
    assert result is not None and result.reason is Reason.NEARING_EXPIRY
    later = int((NOW + timedelta(hours=2)).timestamp())
    assert fired(d, record_for(d, client_secret="s", client_secret_expires_at=later), present(d),
                 "SecretNearingExpiry") is None


def test_rotation_period_elapsed_registers_a_replacement() -> None:
    d = desired(rotation={"period": "12h"})
    result = fired(d, record_for(d), present(d), "RotationPeriodElapsed")
    assert result is not None and [a.kind for a in result.actions] == [ActionKind.REGISTER_REPLACEMENT]
    assert fired(d, record_for(d, last_rotation=NOW - timedelta(hours=1)), present(d), "RotationPeriodElapsed") is None


def test_rotation_of_a_key_pair_client_rotates_the_key() -> None:
    d = desired(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", rotation={"period": "12h"})
    r = record_for(d, keys=[keypairs.generate("ES256", now=NOW - timedelta(days=1))])
    result = fired(d, r, present(d.with_keys(r)), "RotationPeriodElapsed")
    assert result is not None and [a.kind for a in result.actions] == [ActionKind.ROTATE_KEY]


def test_spec_changed_updates_in_place() -> None:
    d = desired(clientName="Billing v2")
    result = fired(d, record_for(desired()), present(desired()), "SpecChanged")
    assert result is not None and result.reason is Reason.SPEC_CHANGED
    assert [(a.kind, a.fields) for a in result.actions] == [(ActionKind.UPDATE, ("client_name",))]
    assert fired(d, record_for(desired(), registration_client_uri=None), Observation(Observed.UNSUPPORTED),
                 "SpecChanged") is None


def test_spec_changed_without_rfc7592_registers_a_replacement() -> None:
    d = desired(clientName="Billing v2")
    old = record_for(desired(), registration_client_uri=None)
    result = fired(d, old, Observation(Observed.UNSUPPORTED), "SpecChangedWithoutUpdate")
    assert result is not None and result.reason is Reason.SPEC_CHANGED_REPLACED
    assert [a.kind for a in result.actions] == [ActionKind.REGISTER_REPLACEMENT]
    assert fired(d, record_for(desired()), present(desired()), "SpecChangedWithoutUpdate") is None


def test_drift_at_server_restores_declared_values() -> None:
    d = desired()
    result = fired(d, record_for(d), present(d, client_name="tampered"), "DriftAtServer")
    assert result is not None and result.reason is Reason.DRIFT
    assert [(a.kind, a.fields) for a in result.actions] == [(ActionKind.UPDATE, ("client_name",))]
    assert fired(d, record_for(d), present(d), "DriftAtServer") is None
    # A value the AS refused when it was sent is a refusal, not drift.
    r = record_for(d, refused={"client_name": {"value": "tampered"}}, refused_for_hash=d.spec_hash)
    assert fired(d, r, present(d, client_name="tampered"), "DriftAtServer") is None


def _cimd() -> tuple[Desired, RegistrationRecord, str, dict[str, Any]]:
    url = "https://app.example.com/client.json"
    d = desired(registration="cimd", clientIdUrl=url, grantTypes=["authorization_code"], responseTypes=["code"],
                redirectUris=["https://app.example.com/cb"], tokenEndpointAuthMethod="none", scope="openid")
    r = record_for(d, client_id=url, registration="cimd", registration_client_uri=None,
                   server_metadata={"client_id": url, "client_name": "Billing"})
    return d, r, url, documents(r)[url]


def test_document_not_published_waits() -> None:
    d, r, url, _ = _cimd()
    result = fired(d, r, Observation(Observed.NOT_READ, published=(Published(url, detail="HTTP 404"),)),
                   "DocumentNotPublished")
    assert result is not None and result.reason is Reason.DOCUMENT_NOT_PUBLISHED
    assert [a.kind for a in result.actions] == [ActionKind.AWAIT_PUBLICATION]
    # A plan made without looking claims nothing.
    assert fired(d, r, Observation.not_read(), "DocumentNotPublished") is None


def test_published_document_differs_waits_for_the_rendered_one() -> None:
    d, r, url, doc = _cimd()
    other = Observation(Observed.NOT_READ, published=(Published(url, {**doc, "client_name": "x"}),))
    result = fired(d, r, other, "PublishedDocumentDiffers")
    assert result is not None and result.reason is Reason.DOCUMENT_DIFFERS and "client_name" in result.message
    same = Observation(Observed.NOT_READ, published=(Published(url, doc),))
    assert fired(d, r, same, "PublishedDocumentDiffers") is None


def test_server_refused_value_is_reported() -> None:
    d = desired()
    r = record_for(d, refused={"scope": {"value": "openid"}}, refused_for_hash=d.spec_hash)
    result = fired(d, r, present(d, scope="openid"), "ServerRefusedValue")
    assert result is not None and [a.kind for a in result.actions] == [ActionKind.REPORT] and "scope" in result.message
    # Refusals of an older spec do not count: the new spec gets a fresh chance.
    assert fired(d, record_for(d, refused={"scope": {}}, refused_for_hash="old"), present(d),
                 "ServerRefusedValue") is None


def test_retired_client_grace_over_deletes_it() -> None:
    d = desired()
    due = RetiringClient(client_id="old", delete_after=NOW - timedelta(seconds=1))
    later = RetiringClient(client_id="later", delete_after=NOW + timedelta(hours=1))
    result = fired(d, record_for(d, retiring=[due, later]), present(d), "RetiredClientGraceOver")
    assert result is not None and [(a.kind, a.target) for a in result.actions] == [(ActionKind.DELETE_RETIRING, "old")]
    assert fired(d, record_for(d, retiring=[later]), present(d), "RetiredClientGraceOver") is None


def test_retired_key_grace_over_removes_it() -> None:
    d = desired(keyPair={}, tokenEndpointAuthMethod="private_key_jwt")
    old = keypairs.generate("ES256", now=NOW - timedelta(days=2)).model_copy(update={"remove_after": NOW})
    r = record_for(d, keys=[old, keypairs.generate("ES256", now=NOW - timedelta(days=1))])
    result = fired(d, r, present(d.with_keys(r)), "RetiredKeyGraceOver")
    assert result is not None and [(a.kind, a.target) for a in result.actions] == [(ActionKind.RETIRE_KEY, old.kid)]


def test_every_policy_has_a_test_and_a_registered_reason() -> None:
    names = [p.name for p in CHAIN]
    assert len(names) == len(set(names))
    text = Path(__file__).read_text()
    assert all(f'"{name}"' in text for name in names)
    # Every reason a policy can give is in the registry.
    assert {str(r) for r in Reason} <= set(BY_NAME)


# --- precedence -----------------------------------------------------------------------------------------

ROTATE_SOON = {"rotation": {"period": "12h"}}


@pytest.mark.parametrize(("case", "spec", "overrides", "observed", "acting", "also_fired"), [
    # deletion decides alone: nothing else is even asked
    ("deleting beats everything", ROTATE_SOON, {"deleting": True, "rotation_request": "r"}, "gone",
     ["Deleting"], []),
    ("gone beats a due rotation", ROTATE_SOON, {}, "gone", ["ClientGoneAtServer"], ["RotationPeriodElapsed"]),
    ("a revoked token beats a spec change", {"clientName": "v2"}, {}, "revoked",
     ["RegistrationAccessTokenRevoked"], ["SpecChanged"]),
    ("a revoked token beats a due rotation: no replacement", ROTATE_SOON, {}, "revoked",
     ["RegistrationAccessTokenRevoked"], ["RotationPeriodElapsed"]),
    ("a request beats the period", ROTATE_SOON, {"rotation_request": "r"}, "present",
     ["RotationRequested"], ["RotationPeriodElapsed"]),
    ("a due rotation beats a spec change (and carries it)", {**ROTATE_SOON, "clientName": "v2"}, {}, "present",
     ["RotationPeriodElapsed"], ["SpecChanged"]),
    ("a spec change beats drift", {"clientName": "v2"}, {}, "drifted", ["SpecChanged"], []),
    ("drift alone", {}, {}, "drifted", ["DriftAtServer"], []),
    ("grace over acts beside a rotation", ROTATE_SOON, {"retiring": True}, "present",
     ["RotationPeriodElapsed", "RetiredClientGraceOver"], []),
    ("nothing fires: in sync", {}, {}, "present", [], []),
])
def test_precedence(case: str, spec: dict[str, Any], overrides: dict[str, Any], observed: str,
                    acting: list[str], also_fired: list[str]) -> None:
    base = desired()
    d = desired(**spec)
    retiring = overrides.pop("retiring", False)
    d = replace(d, **overrides)
    r = record_for(base, retiring=[RetiringClient(client_id="old", delete_after=NOW)] if retiring else [])
    observation = {"gone": Observation(Observed.GONE), "revoked": Observation(Observed.TOKEN_REVOKED),
                   "present": present(base), "drifted": present(base, client_name="tampered")}[observed]
    the_plan = plan(d, r, observation, NOW)
    assert [f.policy for f in the_plan.fired if f.acted] == acting, case
    not_acted = [f.policy for f in the_plan.fired if not f.acted]
    assert all(name in not_acted for name in also_fired), (case, not_acted)
    assert [a.reason for a in the_plan.actions] == [a.reason for f in the_plan.fired if f.acted for a in f.actions]
    assert (the_plan.reason is Reason.IN_SYNC) == (not acting)


def test_plan_records_every_policy_that_fired_for_clientreg_plan() -> None:
    d = replace(desired(clientName="v2", rotation={"period": "12h"}), rotation_request="r")
    the_plan = plan(d, record_for(desired()), present(desired(), client_name="tampered"), NOW)
    assert [f.policy for f in the_plan.fired] == ["RotationRequested", "RotationPeriodElapsed", "SpecChanged"]
    assert [a.kind for a in the_plan.actions] == [ActionKind.REGISTER_REPLACEMENT]
    explained = the_plan.explain()
    assert explained[0].startswith("RotationRequested: RotationRequested:") and "not acted on" in explained[2]


def test_precedence_kinds_are_in_order_in_the_chain() -> None:
    order = [Precedence.EXCLUSIVE, Precedence.PRIMARY, Precedence.UNLESS_ACTING, Precedence.ALWAYS]
    ranks = [order.index(p.precedence) for p in CHAIN]
    assert ranks == sorted(ranks)


# --- a due rotation does not hide a simultaneous spec change ---------------------------------------------

def test_rotation_due_with_a_spec_change_registers_the_replacement_with_the_new_spec() -> None:
    fake = FakeAS()
    h = Harness(fake)
    h.run(make_client(rotation={"period": "24h", "gracePeriod": "1h"}))
    assert h.stored is not None
    first = h.stored.client_id
    later = NOW + timedelta(days=2)
    changed = make_client(clientName="Billing v2", rotation={"period": "24h", "gracePeriod": "1h"})
    the_plan, _ = h.run(changed, later)
    assert [f.policy for f in the_plan.fired] == ["RotationPeriodElapsed", "SpecChanged"]
    assert [a.kind for a in the_plan.actions] == [ActionKind.REGISTER_REPLACEMENT]
    assert h.stored.client_id != first
    # The replacement carries the new spec, and the record says so: nothing is left for another run.
    assert fake.clients[h.stored.client_id]["client_name"] == "Billing v2"
    assert h.stored.spec_hash == Desired.from_client(changed).spec_hash
    fake.calls.clear()
    again, _ = h.run(changed, later + timedelta(minutes=1))
    assert not again.actions and again.reason is Reason.IN_SYNC
    assert fake.writes() == 0


def test_now_is_given_not_read() -> None:
    # plan() is pure: the same inputs at a different `now` decide differently, whatever the wall clock says.
    d = desired(rotation={"period": "12h"})
    r = record_for(d, registered_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert plan(d, r, present(d), datetime(2020, 1, 1, 1, tzinfo=UTC)).reason is Reason.IN_SYNC
    assert plan(d, r, present(d), datetime(2020, 1, 2, tzinfo=UTC)).reason is Reason.PERIOD_ELAPSED
