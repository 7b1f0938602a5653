"""Who may serve a published document where (host bindings, first claimant, one document per path), and the
record feed that gives every replica the same documents from the record Secrets in the records namespace."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from clientreg_operator.cli import build_parser
from clientreg_operator.docfeed import RECORD_SELECTOR, RecordFeed, claim_of
from clientreg_operator.documents import HOST_TAKEN, DocumentIndex, HostBinding, claim, resolve
from test_operator_documents import world
from test_operator_reconciler import NS, FakeCluster

from clientreg import publish
from clientreg.keys import generate
from clientreg.record import RegistrationRecord
from clientreg_kube.conventions import RECORD_KEY, RECORD_SECRET_TYPE
from clientreg_kube.secrets import encode, render_record

RECORDS_NS = "clientreg"
A_URL = "https://app.tenant-a.example.com/clients/agent.json"
A_PATH = "app.tenant-a.example.com/clients/agent.json"
JAN, FEB, MAR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))
T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-03-01T00:00:00Z"


def doc(tag: str) -> dict[str, Any]:
    return {"client_id": A_URL, "client_name": tag}


def served(index_or_resolved: Any, path: str) -> Any:
    body = index_or_resolved.get(path) if isinstance(index_or_resolved, DocumentIndex) \
        else index_or_resolved.served.get(path)
    return json.loads(body) if body is not None else None


# --- the rule ------------------------------------------------------------------------------------------------

def test_a_later_tenant_cannot_take_or_knock_out_the_document_of_the_first() -> None:
    a = claim("tenant-a", "holder", {A_URL: doc("a")}, created=JAN, uid="ua")
    b_same_path = claim("tenant-b", "evil", {A_URL: doc("b")}, created=FEB, uid="ub")
    b_other_path = claim("tenant-b", "evil2", {"https://app.tenant-a.example.com/x.json": doc("b")},
                         created=FEB, uid="uc")
    result = resolve([b_same_path, a, b_other_path])
    assert served(result, A_PATH) == doc("a")  # never "served to neither"
    assert "app.tenant-a.example.com/x.json" not in result.served
    assert [r[1] for r in result.refused[("tenant-b", "evil")]] == ["DocumentHostTaken"]
    assert [r[1] for r in result.refused[("tenant-b", "evil2")]] == ["DocumentHostTaken"]
    assert ("tenant-a", "holder") not in result.refused
    # The message does not say which namespace or client holds the host.
    message = result.refused[("tenant-b", "evil")][0][2]
    assert "holder" not in message and "namespace tenant-a" not in message and "tenant-a/" not in message


def test_the_outcome_is_the_same_whatever_order_the_claims_arrive_in() -> None:
    claims = [claim("tenant-a", "one", {A_URL: doc("a1")}, created=FEB, uid="u2"),
              claim("tenant-a", "two", {A_URL: doc("a2")}, created=FEB, uid="u1"),
              claim("tenant-b", "three", {A_URL: doc("b")}, created=MAR, uid="u0")]
    outcomes = {json.dumps({"served": {p: b.decode() for p, b in r.served.items()},
                            "refused": sorted((k, v) for k, v in r.refused.items())}, sort_keys=True)
                for r in (resolve(list(p)) for p in itertools.permutations(claims))}
    assert len(outcomes) == 1
    # Same creationTimestamp: the lower UID is the older claimant.
    assert served(resolve(claims), A_PATH) == doc("a2")


def test_same_namespace_older_client_keeps_the_path_and_identical_documents_are_shared() -> None:
    old = claim(NS, "old", {A_URL: doc("old")}, created=JAN, uid="u1")
    new = claim(NS, "new", {A_URL: doc("new")}, created=FEB, uid="u2")
    twin = claim(NS, "twin", {A_URL: doc("old")}, created=MAR, uid="u3")
    result = resolve([new, twin, old])
    assert served(result, A_PATH) == doc("old")
    assert [r[1] for r in result.refused[(NS, "new")]] == ["DocumentPathTaken"]
    assert (NS, "twin") not in result.refused


def test_a_platform_binding_gives_the_host_to_its_namespace_even_against_an_older_squatter() -> None:
    squatter = claim("tenant-b", "squat", {A_URL: doc("b")}, created=JAN, uid="u1")
    owner = claim("tenant-a", "agent", {A_URL: doc("a")}, created=MAR, uid="u2")
    bindings = [HostBinding.parse("tenant-a=*.tenant-a.example.com")]
    result = resolve([squatter, owner], bindings)
    assert served(result, A_PATH) == doc("a")
    (_, reason, message), = result.refused[("tenant-b", "squat")]
    assert reason == "DocumentHostTaken" and "bound to other namespaces" in message
    # Without the binding, the squatter (older) keeps it: that is what bindings are for.
    assert served(resolve([squatter, owner]), A_PATH) == doc("b")


def test_a_host_bound_to_two_namespaces_is_shared_and_each_path_goes_to_its_oldest_claimant() -> None:
    bindings = [HostBinding.parse("tenant-a=shared.example.com"), HostBinding.parse("tenant-b=shared.example.com")]
    a = claim("tenant-a", "a", {"https://shared.example.com/a.json": doc("a"),
                                "https://shared.example.com/common.json": doc("a")}, created=FEB, uid="u1")
    b = claim("tenant-b", "b", {"https://shared.example.com/b.json": doc("b"),
                                "https://shared.example.com/common.json": doc("b")}, created=JAN, uid="u2")
    c = claim("tenant-c", "c", {"https://shared.example.com/c.json": doc("c")}, created=JAN, uid="u0")
    result = resolve([a, b, c], bindings)
    assert set(result.served) == {"shared.example.com/a.json", "shared.example.com/b.json",
                                  "shared.example.com/common.json"}
    assert served(result, "shared.example.com/common.json") == doc("b")
    assert [r[1] for r in result.refused[("tenant-a", "a")]] == ["DocumentPathTaken"]
    assert [r[1] for r in result.refused[("tenant-c", "c")]] == ["DocumentHostTaken"]


def test_bindings_match_host_names_without_the_port_and_wildcards_need_a_label() -> None:
    binding = HostBinding.parse("tenant-a=*.Example.com.")
    assert binding.pattern == "*.example.com"
    assert binding.matches("a.example.com") and binding.matches("a.b.example.com")
    assert not binding.matches("example.com") and not binding.matches("evilexample.com")
    a = claim("tenant-b", "b", {"https://a.example.com:8443/x.json": doc("b")}, created=JAN, uid="u")
    assert [r[1] for r in resolve([a], [binding]).refused[("tenant-b", "b")]] == ["DocumentHostTaken"]


@pytest.mark.parametrize("text", ["tenant-a", "=a.example.com", "Tenant_A=a.example.com", "a=", "a=*", "a=*.",
                                  "a=a.example.com/path", "a=a.*.example.com", "a=user@a.example.com",
                                  "../kube-system=a.example.com"])
def test_a_malformed_binding_is_refused_on_the_command_line(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "-A", "--document-host", text])
    assert exited.value.code == 2 and "--document-host" in capsys.readouterr().err


def test_bindings_and_records_namespace_reach_the_config() -> None:
    args = build_parser().parse_args(["run", "-A", "--document-host", "tenant-a=*.a.example.com",
                                      "--document-host", "tenant-b=b.example.com", "--records-namespace", "ops"])
    assert [(b.namespace, b.pattern) for b in args.document_host] == [("tenant-a", "*.a.example.com"),
                                                                     ("tenant-b", "b.example.com")]
    assert args.records_namespace == "ops"


# --- the reconciler's condition --------------------------------------------------------------------------------

def test_the_newer_client_of_a_path_gets_document_path_taken_and_the_older_stays_ready() -> None:
    w, index, _ = world()
    url = "https://keys.tenant-a.example.com/jwks.json"
    for name, created in (("older", "2026-01-01T00:00:00Z"), ("newer", "2026-02-01T00:00:00Z")):
        w.add_client(name, keyPair={}, tokenEndpointAuthMethod="private_key_jwt", jwksUri=url)
        w.cluster.client(name)["metadata"]["creationTimestamp"] = created
    w.reconcile("newer")
    w.reconcile("older")
    w.reconcile("older")
    w.reconcile("newer")
    assert (w.condition(client="older")["status"], w.condition(client="older")["reason"]) == ("True", "InSync")
    newer = w.condition(client="newer")
    assert (newer["status"], newer["reason"]) == ("False", "DocumentPathTaken")
    assert "keys.tenant-a.example.com/jwks.json" in newer["message"]
    assert json.loads(index.get("keys.tenant-a.example.com/jwks.json") or b"null") == w.record("older").public_jwks()
    assert "DocumentPathTaken" in [e["reason"] for e in w.cluster.events]


def test_a_client_claiming_another_namespaces_host_gets_document_host_taken() -> None:
    w, index, _ = world(cimd=True)
    index.put("tenant-z", "first", {A_URL: doc("z")},
              owner={"metadata": {"creationTimestamp": "2025-01-01T00:00:00Z", "uid": "uz"}})
    w.add_client(registration="cimd", clientIdUrl=A_URL, tokenEndpointAuthMethod="none")
    w.reconcile()
    w.reconcile()
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "DocumentHostTaken")
    assert served(index, A_PATH) == doc("z")


# --- the record feed -----------------------------------------------------------------------------------------

def record_secret(namespace: str, name: str, uid: str, record: RegistrationRecord, *, created: str,
                  secret_namespace: str = RECORDS_NS, role: str = "record") -> dict[str, Any]:
    """A record Secret as the records helper writes it (BRIEF interface 4)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": RECORD_SECRET_TYPE,
            "metadata": {"name": f"clientreg-record-{uid}", "namespace": secret_namespace, "uid": f"s-{uid}",
                         "resourceVersion": "1", "creationTimestamp": created,
                         "labels": {"app.kubernetes.io/managed-by": "clientreg-operator", "clientreg.dev/role": role,
                                    "clientreg.dev/oauthclient-namespace": namespace,
                                    "clientreg.dev/oauthclient": name},
                         "annotations": {"clientreg.dev/oauthclient": f"{namespace}/{name}"}},
            "data": encode({RECORD_KEY: json.dumps(record.to_storage())})}


def cimd_record(url: str, tag: str) -> RegistrationRecord:
    return RegistrationRecord(client_id=url, registration="cimd",
                              server_metadata={"client_id": url, "client_name": tag})


def key_record(jwks_uri: str) -> RegistrationRecord:
    key = generate("ES256", now=JAN)
    return RegistrationRecord(client_id="c-1", server_metadata={"jwks_uri": jwks_uri}, keys=[key])


class ListingCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.selectors: list[tuple[str, str]] = []
        self.down = False

    def list_secrets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.selectors.append((namespace, label_selector))
        if self.down:
            raise OSError("connection refused")
        return super().list_secrets(namespace, label_selector)


def test_every_replica_serves_the_same_bytes_from_the_record_secrets() -> None:
    cluster = ListingCluster()
    jwks_url = "https://keys.tenant-a.example.com/svc/jwks.json"
    cluster.put("Secret", record_secret("tenant-a", "agent", "ua", cimd_record(A_URL, "a"), created=T1))
    cluster.put("Secret", record_secret("tenant-a", "svc", "uk", key_record(jwks_url), created=T2))
    # Tenant B, later, claims A's path: it must not displace A's document.
    cluster.put("Secret", record_secret("tenant-b", "evil", "ub", cimd_record(A_URL, "b"), created=T3))
    # A record-shaped Secret outside the records namespace is not read, nor one without the role label.
    cluster.put("Secret", record_secret("tenant-c", "x", "ux", cimd_record("https://c.example.com/c.json", "c"),
                                        created="2025-01-01T00:00:00Z", secret_namespace="tenant-c"))
    cluster.put("Secret", record_secret("tenant-d", "y", "uy", cimd_record("https://d.example.com/d.json", "d"),
                                        created="2025-01-01T00:00:00Z", role="credentials"))
    leader, standby = DocumentIndex(), DocumentIndex()
    for index in (leader, standby):
        assert RecordFeed(cluster, index, namespace=RECORDS_NS).sync() == 2 + 1
    assert cluster.selectors == [(RECORDS_NS, RECORD_SELECTOR)] * 2
    assert RECORD_SELECTOR == "app.kubernetes.io/managed-by=clientreg-operator,clientreg.dev/role=record"
    paths = leader.paths()
    assert paths == [A_PATH, "keys.tenant-a.example.com/svc/jwks.json"] == standby.paths()
    assert all(leader.get(p) == standby.get(p) for p in paths)
    assert served(leader, A_PATH) == cimd_record(A_URL, "a").server_metadata
    jwks = served(standby, "keys.tenant-a.example.com/svc/jwks.json")
    assert jwks["keys"] and not {"d", "p", "q"} & set(jwks["keys"][0])
    assert standby.refusal("tenant-b", "evil") is not None and standby.refusal("tenant-a", "agent") is None


def test_the_feed_follows_changes_and_keeps_its_last_view_while_the_api_server_is_away() -> None:
    cluster = ListingCluster()
    index = DocumentIndex()
    feed = RecordFeed(cluster, index, namespace=RECORDS_NS, interval=0.01)
    cluster.put("Secret", record_secret("tenant-a", "agent", "ua", cimd_record(A_URL, "a"), created=T1))
    feed.sync()
    assert served(index, A_PATH) == doc("a") | {"client_id": A_URL}
    cluster.down = True
    with pytest.raises(OSError):
        feed.sync()
    assert served(index, A_PATH) is not None  # still served
    cluster.down = False
    del cluster.objects[("Secret", RECORDS_NS, "clientreg-record-ua")]
    feed.sync()
    assert index.get(A_PATH) is None and index.paths() == []


def test_the_feed_runs_until_stopped_and_survives_failures() -> None:
    cluster = ListingCluster()
    cluster.put("Secret", record_secret("tenant-a", "agent", "ua", cimd_record(A_URL, "a"), created=T1))
    index = DocumentIndex()
    feed = RecordFeed(cluster, index, namespace=RECORDS_NS, interval=0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        await feed.listed.wait()
        cluster.down = True
        failed_at = len(cluster.selectors)
        while len(cluster.selectors) < failed_at + 3:
            await asyncio.sleep(0.01)
        cluster.down = False
        synced = feed.syncs
        while feed.syncs == synced:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(scenario())
    assert index.get(A_PATH) is not None


class _WatchingServer:
    """One list of the record Secrets, then one watch stream of scripted events, then a quiet watch."""

    def __init__(self, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        self.items, self.events = items, events
        self.asked: list[tuple[str, str, dict[str, str]]] = []
        self.quiet = asyncio.Event()

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      **_: Any) -> dict[str, Any]:
        self.asked.append(("list", path, dict(params or {})))
        return {"metadata": {"resourceVersion": "10"}, "items": self.items}

    async def watch(self, path: str, params: dict[str, str], *, timeout: float) -> Any:
        self.asked.append(("watch", path, dict(params)))
        events, self.events = self.events, []
        if not events:
            self.quiet.set()
            await asyncio.Event().wait()
        for event in events:
            yield event


def test_the_feed_watches_the_records_and_lists_them_only_once() -> None:
    first = record_secret("tenant-a", "agent", "ua", cimd_record(A_URL, "a"), created=T1)
    changed = record_secret("tenant-a", "agent", "ua", cimd_record(A_URL, "a2"), created=T1)
    changed["metadata"]["resourceVersion"] = "11"
    b_url = "https://app.tenant-b.example.com/clients/b.json"
    other = record_secret("tenant-b", "b", "ub", cimd_record(b_url, "b"), created=T2)
    server = _WatchingServer([first], [{"type": "MODIFIED", "object": changed}, {"type": "ADDED", "object": other},
                                       {"type": "DELETED", "object": other}])
    index = DocumentIndex()
    feed = RecordFeed(ListingCluster(), index, namespace=RECORDS_NS, interval=0.01,
                      api=server)  # type: ignore[arg-type]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        await asyncio.wait_for(feed.listed.wait(), 5)
        await asyncio.wait_for(server.quiet.wait(), 5)
        await asyncio.sleep(0.05)  # a few intervals: the view after the last event reaches the index
        idle = feed.syncs
        await asyncio.sleep(0.1)
        assert feed.syncs == idle  # nothing changed: nothing handed over, nothing listed
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert served(index, A_PATH) == doc("a2") | {"client_id": A_URL}  # the change, from the watch
    assert index.get("app.tenant-b.example.com/clients/b.json") is None  # added, then deleted
    assert [kind for kind, _, _ in server.asked] == ["list", "watch", "watch"]
    assert all(path == f"/api/v1/namespaces/{RECORDS_NS}/secrets" and params["labelSelector"] == RECORD_SELECTOR
               for _, path, params in server.asked)


def test_a_direct_put_newer_than_a_list_is_not_undone_by_it() -> None:
    index = DocumentIndex()
    listed_since = -1.0  # a list that started before the put below
    index.put("tenant-a", "agent", {A_URL: doc("a")}, owner={"metadata": {"uid": "ua"}})
    index.replace_all([], listed_since=listed_since)
    assert index.get(A_PATH) is not None
    index.replace_all([], listed_since=float("inf"))  # a list that started after it: the record is gone
    assert index.get(A_PATH) is None


def test_the_feed_orders_claimants_like_the_leader() -> None:
    """The leader puts with the OAuthClient's creationTimestamp; the record Secret it writes carries it, so a
    standby reading the record orders the claimants the same way."""
    owner = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
             "metadata": {"name": "agent", "namespace": "tenant-a", "uid": "ua",
                          "creationTimestamp": "2026-01-01T00:00:00Z"}}
    secret = render_record(cimd_record(A_URL, "a"), name="clientreg-record-ua", namespace=RECORDS_NS,
                           client_name="agent", client_namespace="tenant-a", owner=owner)
    secret["metadata"]["creationTimestamp"] = "2026-06-01T00:00:00Z"  # written (or migrated) much later
    found = claim_of(secret)
    assert found is not None and (found.namespace, found.name, found.uid) == ("tenant-a", "agent", "ua")
    assert found.created == JAN
    assert found.documents == {A_PATH: publish.render(cimd_record(A_URL, "a").server_metadata)}


def test_unreadable_or_anonymous_records_are_skipped() -> None:
    good = record_secret("tenant-a", "agent", "ua", cimd_record(A_URL, "a"), created="2026-01-01T00:00:00Z")
    garbage = json.loads(json.dumps(good))
    garbage["data"] = encode({RECORD_KEY: "{not json"})
    anonymous = json.loads(json.dumps(good))
    anonymous["metadata"]["annotations"] = {}
    deleting = json.loads(json.dumps(good))
    deleting["metadata"]["deletionTimestamp"] = "2026-02-01T00:00:00Z"
    assert claim_of(good) is not None
    assert claim_of(garbage) is None and claim_of(anonymous) is None and claim_of(deleting) is None



def test_clients_created_in_the_same_second_are_ordered_by_when_they_registered_not_by_uid() -> None:
    """creationTimestamp has whole seconds: the tenancy suite's impostor, created within a second of its victim,
    won half the time on its UID. The record's registered_at (microseconds, in every replica's view) decides."""
    first, later = FEB.replace(microsecond=1), FEB.replace(microsecond=2)
    victim = claim("tenant-a", "victim", {A_URL: doc("a")}, created=FEB, uid="zz", claimed=first)
    impostor = claim("tenant-b", "impostor", {A_URL: doc("b")}, created=FEB, uid="aa", claimed=later)
    for order in ([victim, impostor], [impostor, victim]):
        result = resolve(order)
        assert served(result, A_PATH) == doc("a")
        assert result.refused[("tenant-b", "impostor")][0][1] == HOST_TAKEN
