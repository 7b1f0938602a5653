"""The operator after a 401 to the RFC 7592 read (clientreg.liveness): a client someone else's PUT took the
registration access token of is kept and reported (Stalled, a Warning naming it, how to adopt it); a client
the token endpoint proves gone is registered anew."""

from __future__ import annotations

from test_operator_reconciler import World


def taken(w: World) -> str:
    w.add_client()
    w.reconcile()
    client_id = w.credentials()["client_id"]
    w.fake.rats[client_id] = "someone-elses-token"
    w.fake.calls.clear()
    w.cluster.events.clear()
    return client_id


def test_a_revoked_token_keeps_the_client_ready_stalled_and_says_how_to_adopt_it() -> None:
    w = World()
    client_id = taken(w)
    w.reconcile()
    assert w.fake.calls["POST /register"] == 0 and list(w.fake.clients) == [client_id]
    assert w.credentials()["client_id"] == client_id and w.record().client_id == client_id
    ready, synced, stalled = w.condition("Ready"), w.condition("Synced"), w.condition("Stalled")
    assert ready["status"] == "True" and synced["status"] == "False"
    assert synced["reason"] == stalled["reason"] == "RegistrationAccessTokenRevoked" and stalled["status"] == "True"
    assert "clientreg-record-" in synced["message"] and client_id in synced["message"]
    warnings = [e for e in w.cluster.events if e["warning"] and e["reason"] == "RegistrationAccessTokenRevoked"]
    assert warnings and client_id in warnings[0]["message"]
    assert w.cluster.client()["status"]["clientId"] == client_id
    secret = w.credentials()["client_secret"]
    assert all(secret not in e["message"] for e in w.cluster.events) and secret not in str(w.cluster.client())


def test_a_revoked_token_whose_client_cannot_be_proven_alive_is_not_ready() -> None:
    w = World()
    client_id = taken(w)
    w.fake.token_answer = (503, {})
    w.reconcile()
    assert w.fake.calls["POST /register"] == 0 and list(w.fake.clients) == [client_id]
    assert w.condition("Ready")["status"] == "False" and w.condition("Stalled")["status"] == "True"


def test_a_client_the_token_endpoint_proves_gone_is_registered_anew() -> None:
    w = World()
    client_id = taken(w)
    del w.fake.clients[client_id]
    w.reconcile()
    assert w.fake.calls["POST /register"] == 1 and w.credentials()["client_id"] != client_id
    # Events name the outcome (conditions carry causes); no "token revoked" warning for a client proven gone.
    reasons = {e["reason"] for e in w.cluster.events}
    assert "Registered" in reasons and "RegistrationAccessTokenRevoked" not in reasons
