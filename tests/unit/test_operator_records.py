"""Record Secrets in the operator's own namespace: where they live, how old ones move there on upgrade,
which ones the sweep may delete, and what a 401 on deleting a retiring client does (issue 11, finding 4).

The fake cluster and the in-memory AS are those of test_operator_reconciler.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from clientreg_operator.reconciler import Reconciler
from clientreg_operator.records import RecordStore
from test_operator_reconciler import NS, RECORDS, World

from clientreg_kube.cluster import Body
from clientreg_kube.conventions import RECORD_FINALIZER, ROTATE_ANNOTATION
from clientreg_kube.secrets import decode

LEGACY = "billing-clientreg-record"


def _restart(w: World) -> None:
    """A new operator process: nothing remembered but what the cluster holds."""
    old = w.reconciler
    w.reconciler = Reconciler(w.cluster, old.connections, drift_check_interval=600, metrics=old.metrics,
                              clock=w.clock, records_namespace=RECORDS)


def _as_left_by_an_older_operator(w: World) -> Body:
    """Move the record to where operators before issue 11 kept it: the tenant's namespace, owned by the
    OAuthClient through an ownerReference, protected by the record finalizer."""
    current = w.record_secret()
    assert current is not None
    client = w.cluster.client()
    legacy = {"apiVersion": "v1", "kind": "Secret", "type": current["type"], "data": copy.deepcopy(current["data"]),
              "metadata": {"name": LEGACY, "namespace": NS, "finalizers": [RECORD_FINALIZER],
                           "labels": {"app.kubernetes.io/managed-by": "clientreg-operator",
                                      "clientreg.dev/role": "record", "clientreg.dev/oauthclient": "billing"},
                           "ownerReferences": [{"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                                                "name": "billing", "uid": client["metadata"]["uid"],
                                                "controller": True, "blockOwnerDeletion": True}]}}
    del w.cluster.objects[("Secret", RECORDS, current["metadata"]["name"])]
    w.cluster.put("Secret", legacy)
    return legacy


def _rats(w: World) -> set[str]:
    record = w.record()
    found = {record.registration_access_token.get_secret_value()}
    found |= {old.registration_access_token.get_secret_value() for old in record.retiring}
    return found


# --- where records live -----------------------------------------------------------------------------

def test_the_record_lives_in_the_records_namespace_under_the_agreed_name_labels_and_annotation() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    uid = w.cluster.client()["metadata"]["uid"]
    secret = w.cluster.secret(f"clientreg-record-{uid}", RECORDS)
    assert secret is not None
    meta = secret["metadata"]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "clientreg-operator", "clientreg.dev/role": "record",
                              "clientreg.dev/oauthclient-namespace": NS, "clientreg.dev/oauthclient": "billing"}
    assert meta["annotations"]["clientreg.dev/oauthclient"] == f"{NS}/billing"
    assert meta["finalizers"] == [RECORD_FINALIZER]
    # An ownerReference cannot cross namespaces: the garbage collector would delete the record at once.
    assert "ownerReferences" not in meta
    assert set(secret["data"]) == {"record.json"}
    stored = json.loads(base64.b64decode(secret["data"]["record.json"]))
    assert stored["client_id"] == w.credentials()["client_id"] and stored["registration_access_token"]


def test_a_long_client_name_is_hashed_in_the_label_and_whole_in_the_annotation() -> None:
    w = World()
    name = "a" * 70
    w.add_client(name)
    w.reconcile(name)
    meta = w.record_secret(name)["metadata"]  # type: ignore[index]
    assert len(meta["labels"]["clientreg.dev/oauthclient"]) <= 63
    assert meta["annotations"]["clientreg.dev/oauthclient"] == f"{NS}/{name}"


def test_no_secret_of_the_tenant_namespace_holds_a_registration_access_token() -> None:
    w = World()
    w.add_client(rotation={"gracePeriod": "5m"})
    w.reconcile()
    w.cluster.client()["metadata"]["annotations"][ROTATE_ANNOTATION] = "r1"
    w.reconcile()  # a retiring client now: two tokens in the record
    rats = _rats(w)
    assert len(rats) == 2
    tenant = [body for (kind, ns, _), body in w.cluster.objects.items() if kind == "Secret" and ns == NS]
    assert {b["metadata"]["name"] for b in tenant} == {"as-iat", "billing-oauth"}
    visible = json.dumps([decode(b) for b in tenant])
    assert not [rat for rat in rats if rat in visible]


def test_deleting_the_client_releases_its_record_in_the_records_namespace() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    assert w.record_secret() is not None
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:05:00Z"
    assert w.reconcile().finished
    assert [key for key in w.cluster.objects if key[0] == "Secret" and key[1] == RECORDS] == []


# --- the upgrade migration -------------------------------------------------------------------------------

def test_an_old_place_record_moves_to_the_records_namespace_without_a_new_registration() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    client_id, rat = w.record().client_id, w.record().registration_access_token
    _as_left_by_an_older_operator(w)
    _restart(w)
    w.fake.calls.clear()
    w.reconcile()
    assert w.cluster.secret(LEGACY) is None, "released (finalizer removed) and deleted"
    assert w.record().client_id == client_id and w.record().registration_access_token == rat
    assert "POST /register" not in w.fake.calls and len(w.fake.clients) == 1
    moved = [e for e in w.cluster.events if e["reason"] == "RecordMoved"]
    assert len(moved) == 1 and client_id in moved[0]["message"] and ROTATE_ANNOTATION in moved[0]["message"]
    assert rat.get_secret_value() not in json.dumps(w.cluster.events)
    assert w.condition()["status"] == "True"


def test_a_crash_between_copy_and_delete_keeps_the_new_record_and_deletes_the_old(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    w.add_client()
    w.reconcile()
    _as_left_by_an_older_operator(w)
    _restart(w)

    def crash(namespace: str, name: str, body: Body) -> Body:
        raise RuntimeError("process killed")

    monkeypatch.setattr(w.cluster, "replace_secret", crash)  # dies while releasing the old record
    with pytest.raises(RuntimeError):
        w.reconcile()
    assert w.cluster.secret(LEGACY) is not None and w.record_secret() is not None
    monkeypatch.undo()
    # Meanwhile the new record moved on (as if the AS had rotated the token and it was saved there).
    newer = w.record()
    newer.registration_access_token = "rotated-since"  # type: ignore[assignment]
    w.fake.rats[newer.client_id] = "rotated-since"
    w.reconciler.records.save(w.cluster.client(), newer)
    _restart(w)
    w.reconcile()
    assert w.cluster.secret(LEGACY) is None
    assert w.record().registration_access_token.get_secret_value() == "rotated-since"
    assert len(w.fake.clients) == 1 and w.condition()["reason"] == "InSync"


def test_an_old_place_record_of_another_oauthclient_is_left_alone() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    legacy = _as_left_by_an_older_operator(w)
    w.cluster.objects[("Secret", NS, LEGACY)]["metadata"]["ownerReferences"][0]["uid"] = "an-earlier-billing"
    _restart(w)
    w.reconcile()
    left = w.cluster.secret(LEGACY)
    assert left is not None and left["data"] == legacy["data"], "not ours: neither moved nor deleted"
    assert w.record().client_id != json.loads(base64.b64decode(legacy["data"]["record.json"]))["client_id"]


def test_an_unreadable_old_place_record_is_not_deleted() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    _as_left_by_an_older_operator(w)
    w.cluster.objects[("Secret", NS, LEGACY)]["data"]["record.json"] = base64.b64encode(b"{not json").decode()
    _restart(w)
    w.reconcile()
    assert w.cluster.secret(LEGACY) is not None and w.record_secret() is None
    assert w.condition()["status"] == "False" and "unreadable" in w.condition()["message"]


# --- the sweep ---------------------------------------------------------------------------------------------

def _record_of(w: World, namespace: str, name: str, uid: str, *, finalizer: bool) -> str:
    store = RecordStore(w.cluster, RECORDS)
    body = {"metadata": {"namespace": namespace, "name": name, "uid": uid}}
    rendered = store.render(w.record(), body)
    if not finalizer:
        del rendered["metadata"]["finalizers"]
    w.cluster.create_secret(RECORDS, rendered)
    return str(rendered["metadata"]["name"])


def test_the_sweep_deletes_only_released_records_of_vanished_clients() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    live = w.record_secret()["metadata"]["name"]  # type: ignore[index]
    held = _record_of(w, NS, "vanished", "uid-1", finalizer=True)
    released = _record_of(w, NS, "done", "uid-2", finalizer=False)
    replaced = _record_of(w, NS, "billing", "uid-of-an-earlier-billing", finalizer=True)
    result = w.reconciler.records.sweep()
    assert (result.live, result.removed, result.orphaned) == (1, 1, 2)
    assert w.cluster.secret(released, RECORDS) is None
    for kept in (live, held, replaced):
        assert w.cluster.secret(kept, RECORDS) is not None, kept


def test_the_sweep_keeps_records_it_cannot_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    w.add_client()
    w.reconcile()
    unreadable = _record_of(w, "tenant-b", "other", "uid-3", finalizer=False)
    w.cluster.objects[("Secret", RECORDS, unreadable)]["metadata"]["annotations"]["clientreg.dev/oauthclient"] = "x"
    forbidden = _record_of(w, "tenant-c", "other", "uid-4", finalizer=False)
    get_client = w.cluster.get_client

    def no_access(namespace: str, name: str) -> Body | None:
        if namespace == "tenant-c":
            raise PermissionError("403")
        return get_client(namespace, name)

    monkeypatch.setattr(w.cluster, "get_client", no_access)
    result = w.reconciler.records.sweep()
    assert result.skipped == 2 and result.removed == 0
    assert w.cluster.secret(unreadable, RECORDS) is not None and w.cluster.secret(forbidden, RECORDS) is not None


# --- a 401 on deleting a retiring client -----------------------------------------------------------------

def _rotated(w: World) -> str:
    """A rotated client whose predecessor is retiring for 5 minutes; returns the predecessor's ID."""
    w.add_client(rotation={"gracePeriod": "5m"})
    w.reconcile()
    old = w.credentials()["client_id"]
    w.cluster.client()["metadata"]["annotations"][ROTATE_ANNOTATION] = "r1"
    w.reconcile()
    return old


def test_a_401_on_deleting_a_retiring_client_keeps_it_warns_and_retries_later() -> None:
    w = World()
    old = _rotated(w)
    w.fake.rats[old] = "rotated-by-someone-holding-the-token"  # a PUT with a stolen token did this
    w.clock.now += timedelta(minutes=6)
    result = w.reconcile()
    assert old in w.fake.clients, "still alive at the AS"
    (entry,) = w.record().retiring
    assert entry.client_id == old and entry.delete_refusals == 1
    (warning,) = [e for e in w.cluster.events if e["reason"] == "RetiringClientDeleteRefused"]
    assert warning["warning"] and old in warning["message"]
    assert not [rat for rat in _rats(w) | {"rotated-by-someone-holding-the-token"}
                if rat in json.dumps(w.cluster.events) + json.dumps(w.cluster.client()["status"])]
    assert [r["clientId"] for r in w.cluster.client()["status"]["retiring"]] == [old]
    synced, ready = w.condition("Synced"), w.condition("Ready")
    assert (synced["status"], synced["reason"]) == ("False", "RetiringClientDeleteRefused")
    assert ready["status"] == "True", "the current credentials work"
    assert old in ready["message"]
    assert result.requeue_after == pytest.approx(300)  # the first retry, 5 minutes on

    deletes = w.fake.calls["DELETE /register/<id>"]
    w.clock.now += timedelta(minutes=1)
    w.reconcile()  # a drift check before the retry is due: no DELETE, no new Warning
    assert w.fake.calls["DELETE /register/<id>"] == deletes
    assert len([e for e in w.cluster.events if e["reason"] == "RetiringClientDeleteRefused"]) == 1
    w.clock.now += timedelta(minutes=5)
    w.reconcile()  # due: tried again, refused again, the next try 10 minutes on
    assert w.fake.calls["DELETE /register/<id>"] == deletes + 1
    assert w.record().retiring[0].delete_refusals == 2
    assert w.record().retiring[0].delete_after == w.clock.now + timedelta(minutes=10)


def test_a_404_on_deleting_a_retiring_client_still_means_gone() -> None:
    w = World()
    old = _rotated(w)
    real = w.fake.handle

    def gone(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(404, json={"error": "not_found"})
        return real(request)

    w.fake.handle = gone  # type: ignore[method-assign]
    w.clock.now += timedelta(minutes=6)
    w.reconcile()
    assert w.record().retiring == []
    assert "retiring" not in w.cluster.client()["status"]
    assert w.condition("Synced")["status"] == "True"
    assert any(e["reason"] == "OldClientDeleted" and old in e["message"] for e in w.cluster.events)


def test_a_refused_retiring_client_is_deleted_once_the_as_lets_go() -> None:
    w = World()
    old = _rotated(w)
    real_rat = w.fake.rats[old]
    w.fake.rats[old] = "someone-else's"
    w.clock.now += timedelta(minutes=6)
    w.reconcile()
    w.fake.rats[old] = real_rat  # e.g. the AS admin restored it
    w.clock.now += timedelta(minutes=5)
    w.reconcile()
    assert old not in w.fake.clients and w.record().retiring == []
    assert w.condition("Synced")["status"] == "True"


def test_deleting_a_resource_whose_retiring_client_refuses_waits_unless_orphaned() -> None:
    w = World()
    old = _rotated(w)
    w.fake.rats[old] = "someone-else's"
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:05:00Z"
    result = w.reconcile()
    assert not result.finished and result.reason == "RetiringClientDeleteRefused"
    assert old in w.fake.clients and w.record_secret() is not None, "the record still holds what is needed"
    w.cluster.client()["spec"]["deletionPolicy"] = "Orphan"
    assert w.reconcile().finished
    assert w.record_secret() is None


# --- the Secret watch -----------------------------------------------------------------------------------

def _event_body(namespace: str, annotation: str, *, role: str = "record") -> Any:
    return {"metadata": {"namespace": namespace, "name": "clientreg-record-x",
                         "labels": {"clientreg.dev/role": role},
                         "annotations": {"clientreg.dev/oauthclient": annotation}}}


def test_a_record_event_heals_its_client_only_when_it_comes_from_the_records_namespace() -> None:
    from clientreg_operator.controller import owning_client as _owning_client

    assert _owning_client(_event_body(RECORDS, f"{NS}/billing"), RECORDS) == (NS, "billing")
    # A tenant may label a Secret of its own namespace like a record and name someone else's client in it.
    assert _owning_client(_event_body("tenant-b", f"{NS}/billing"), RECORDS) is None
    assert _owning_client(_event_body(RECORDS, "no-slash"), RECORDS) is None
    assert _owning_client(_event_body(RECORDS, f"{NS}/billing", role="credentials"), RECORDS) is None


# --- the flag -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {"POD_NAMESPACE": "clientreg-system"}, "clientreg-system"),
    ([], {}, "platform"),
    (["--records-namespace", "vault"], {"POD_NAMESPACE": "clientreg-system"}, "vault"),
])
def test_records_namespace_defaults_to_the_pod_namespace_then_the_cluster_resource_namespace(
        monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], expected: str) -> None:
    from clientreg_operator import cli, runner

    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seen: list[Any] = []
    monkeypatch.setattr(runner, "run", lambda cfg: seen.append(cfg) or 0)
    assert cli.main(["run", "--all-namespaces", "--cluster-resource-namespace", "platform", *argv]) == 0
    assert seen[0].records_namespace == expected


def test_a_records_namespace_that_is_no_namespace_name_is_refused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from clientreg_operator import cli, runner

    monkeypatch.setattr(runner, "run", lambda cfg: pytest.fail("must not run"))
    assert cli.main(["run", "--all-namespaces", "--records-namespace", "../kube-system"]) == 2
    assert "--records-namespace" in capsys.readouterr().err


def test_the_watch_answers_for_old_place_records_so_a_new_client_costs_no_extra_read() -> None:
    """With the Secret watch's say-so ("no such Secret there"), the one-time look for an old-place record
    reads nothing; without it (not listed yet, --no-watch-credentials), it reads, and still migrates."""
    w = World()
    w.add_client()
    read: list[tuple[str, str]] = []
    real_get = w.cluster.get_secret

    def counting_get(namespace: str, name: str) -> Body | None:
        read.append((namespace, name))
        return real_get(namespace, name)

    w.cluster.get_secret = counting_get  # type: ignore[method-assign]
    w.reconciler.records.legacy_absent = lambda namespace, name: True
    w.reconcile()
    assert (NS, LEGACY) not in read

    _as_left_by_an_older_operator(w)
    _restart(w)
    w.reconciler.records.legacy_absent = lambda namespace, name: False  # unsure: look
    w.reconcile()
    assert (NS, LEGACY) in read and w.cluster.secret(LEGACY) is None  # found and moved
