"""What the operator tells after a rotation: the reconcile result that restarts consumers
(``clientreg.dev/restart-on-rotation``) and ``status.nextRotation``.

A key rotation keeps the client ID and changes the private key workloads read: it must count as a
rotation for restarts, and the retiring key's removal time is not the next rotation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from test_operator_reconciler import World

from clientreg_kube.conventions import ROTATE_ANNOTATION


def _key_pair_client(w: World, **spec: object) -> None:
    w.add_client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", **spec)
    first = w.reconcile()
    assert not first.rotated  # the first Secret is no rotation: nothing ran with other credentials
    assert w.credentials()["private_key"].startswith("-----BEGIN")


def _request_rotation(w: World, value: str = "r1") -> None:
    w.cluster.client()["metadata"]["annotations"][ROTATE_ANNOTATION] = value


def _status_time(w: World, field: str) -> datetime:
    return datetime.fromisoformat(w.cluster.client()["status"][field].replace("Z", "+00:00"))


def test_a_key_rotation_counts_as_a_rotation_for_consumer_restarts() -> None:
    w = World()
    _key_pair_client(w, rotation={"gracePeriod": "1h"})
    before = w.credentials()
    _request_rotation(w)
    result = w.reconcile()
    after = w.credentials()
    assert after["client_id"] == before["client_id"], "a key rotation keeps the client"
    assert after["private_key"] != before["private_key"] and after["key_id"] != before["key_id"]
    assert result.rotated and result.secret_name == "billing-oauth"


def test_a_reconcile_that_changes_no_credentials_restarts_nothing() -> None:
    w = World()
    _key_pair_client(w, rotation={"gracePeriod": "1h"})
    _request_rotation(w)
    assert w.reconcile().rotated
    assert not w.reconcile().rotated  # same request, same key: already rolled out
    w.cluster.edit_client(scope="api:read api:write")  # a metadata update: same credentials
    assert not w.reconcile().rotated


def test_a_new_client_id_still_counts_as_a_rotation() -> None:
    w = World()
    w.add_client(rotation={"gracePeriod": "5m"})
    w.reconcile()
    _request_rotation(w)
    assert w.reconcile().rotated


def test_next_rotation_is_the_next_rotation_not_the_old_keys_removal() -> None:
    w = World()
    _key_pair_client(w, rotation={"period": "720h", "gracePeriod": "1h"})
    _request_rotation(w)
    w.reconcile()
    rotated_at = _status_time(w, "lastRotation")
    # The old key stays published for the grace period (1h); the next rotation is a period away.
    assert _status_time(w, "nextRotation") == rotated_at + timedelta(hours=720)
