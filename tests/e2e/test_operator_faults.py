"""The operator under faults (issue 5, "Faults"): N OAuthClients converge (or rotate) while something breaks.

Every scenario has a namespace of its own, a fresh dev AS behind a :class:`support.faultproxy.FaultProxy`
(the proxy's URL is the issuer, so discovery, registration, RFC 7592 reads and token requests all cross
it) and its own operator process(es), confined to that namespace and to the shard
``test.clientreg.dev/shard=faults`` under their own Lease (``clientreg-faults``). The session's operator
serves only OAuthClients without the shard label (``conftest.PRIMARY_SHARD``), so it never touches these
clients; :func:`assert_primary_untouched` checks that through its metrics.

Faults are switched on by counts (the K-th registration, the next B requests), never by the clock; the AS
outage lasts a fixed 60 s because that is the fault. After recovery, :func:`assert_recovered` checks
behaviour only:

1. every OAuthClient Ready (InSync, observedGeneration current), every record without retiring clients;
2. every credentials Secret's client_id/client_secret obtains a client_credentials token;
3. the clients at the AS (``/_dev/clients``, straight to the dev AS) are exactly the client IDs of the
   record Secrets: no duplicate, and no orphan except where the test knows the crash window can make one
   (the SIGKILL scenario: at most one per kill and worker, measured and reported);
4. no issued secret (client secrets and registration access tokens, from the records and from every
   registration answer the proxy relayed, orphans included) in any operator log, the proxy's log or the
   test process's captured output.

Timings are measured and printed (``-rP``), never asserted. N defaults to 200; set
CLIENTREG_FAULT_CLIENTS=20 for a quick run. See docs/reliability.md, "Operator under faults".
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr
from support.faultproxy import FaultProxy
from support.operator_process import OPERATOR_NAMESPACE, OperatorProcess, wait_for

from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.e2e

GROUP, VERSION = "clientreg.dev", "v1alpha1"
N = int(os.environ.get("CLIENTREG_FAULT_CLIENTS", "200"))
SHARD_LABEL = "test.clientreg.dev/shard"
SHARD_VALUE = "faults"
LEASE = "clientreg-faults"
IAT = "iat-for-operator-faults"
#: OperatorConfig.workers: reconciles in flight in one operator process, so registrations in flight too.
WORKERS = 8
ROTATE_ANNOTATION = "clientreg.dev/rotate"
#: clientreg_operator.runner.EXIT_LOST_LEASE: a leader that could not renew its Lease exits with it.
EXIT_LOST_LEASE = 3
#: A 60 s drift check keeps the AS busy at N = 200 without flooding it; the 3 s of the session's operator would.
FAULT_OPERATOR = ("--label-selector", f"{SHARD_LABEL}={SHARD_VALUE}", "--lease-name", LEASE,
                  "--drift-check-interval", "60s")
#: Kills land at random points; the seed is printed so a failing run can be repeated.
SEED = int(os.environ.get("CLIENTREG_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))


def bound(per_client: float, fixed: float = 120.0) -> float:
    """A generous upper bound for a wait that grows with N: a hang fails the test, slowness does not."""
    return fixed + per_client * N


@dataclass
class Stack:
    kube: Any
    namespace: str
    dev: DevServer
    proxy: FaultProxy
    kubeconfig: Path
    logs: Path
    operators: dict[str, OperatorProcess] = field(default_factory=dict)
    #: What the scenario measured, printed at the end and recorded as JUnit properties.
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.kube.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.kube.api)

    def operator(self, identity: str = "faults", *extra: str) -> OperatorProcess:
        """This scenario's operator process ``identity`` (not started; the same object across restarts, so
        its log file collects every life of the process). ``extra`` flags override FAULT_OPERATOR's."""
        if identity not in self.operators:
            self.operators[identity] = OperatorProcess(self.kubeconfig, self.logs, identity=identity,
                                                       namespaces=(self.namespace,), extra=(*FAULT_OPERATOR, *extra))
        return self.operators[identity]

    def create_clients(self, n: int = N) -> float:
        """N labelled OAuthClients, created by 8 threads at once; returns when the last was created."""
        def create(i: int) -> None:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "oauthclients", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient",
                "metadata": {"name": f"c{i:04d}", "labels": {SHARD_LABEL: SHARD_VALUE}},
                # A distinct clientName makes every registration body, so the proxy's request key, distinct.
                "spec": {"serverRef": {"name": "dev"}, "clientName": f"fault client {i}",
                         "grantTypes": ["client_credentials"], "rotation": {"gracePeriod": "1s"}}})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(n)))
        return time.monotonic()

    def rotate_all(self, request: str) -> None:
        def annotate(name: str) -> None:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "oauthclients", name,
                {"metadata": {"annotations": {ROTATE_ANNOTATION: request}}},
                _content_type="application/merge-patch+json")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(annotate, [c["metadata"]["name"] for c in self.clients()]))

    # --- what is there ----------------------------------------------------------------------------------

    def clients(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "oauthclients")["items"]
        return items

    def secrets(self, role: str) -> dict[str, dict[str, str]]:
        """The operator's Secrets of one role (``record`` or ``credentials``), by OAuthClient name, decoded."""
        # Records live in the operator's namespace, labelled with their OAuthClient's namespace.
        found = (self.core.list_namespaced_secret(self.namespace, label_selector=f"clientreg.dev/role={role}")
                 if role != "record" else self.core.list_namespaced_secret(
                     OPERATOR_NAMESPACE, label_selector=f"clientreg.dev/role=record,"
                                                        f"clientreg.dev/oauthclient-namespace={self.namespace}"))
        return {s.metadata.labels["clientreg.dev/oauthclient"]:
                {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()} for s in found.items}

    def records(self) -> dict[str, RegistrationRecord]:
        return {name: RegistrationRecord.from_storage(json.loads(data["record.json"]))
                for name, data in self.secrets("record").items() if data.get("record.json")}

    def clients_at_as(self) -> list[str]:
        # Straight to the dev AS: the test's own view never crosses the faults.
        ids: list[str] = httpx.get(f"http://127.0.0.1:{self.dev.port}/_dev/clients", timeout=30).json()
        return ids

    # --- waiting ----------------------------------------------------------------------------------------

    def not_converged(self, rotation: str | None = None) -> list[str]:
        """Why the namespace is not converged yet (empty: converged)."""
        problems = []
        items = self.clients()
        if len(items) != N:
            problems.append(f"{len(items)} OAuthClients")
        for item in items:
            name, status = item["metadata"]["name"], item.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
            if not ready or ready["status"] != "True" or ready["reason"] != "InSync":
                problems.append(f"{name}: {ready['reason'] if ready else 'no Ready condition'}")
            elif status.get("observedGeneration") != item["metadata"]["generation"]:
                problems.append(f"{name}: observedGeneration {status.get('observedGeneration')}")
            elif rotation is not None and status.get("lastRotationRequest") != rotation:
                problems.append(f"{name}: rotation {rotation} not done")
        if problems:
            return problems
        records = self.records()
        if len(records) != N:
            return [f"{len(records)} record Secrets"]
        return [f"{name}: old client {r.retiring[0].client_id} still retiring"
                for name, r in records.items() if r.retiring]

    def wait_converged(self, what: str, timeout: float, rotation: str | None = None) -> float:
        """Poll (every 2 s: listing 3 x N objects is not free on 2 cores) until converged; returns when."""
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        while time.monotonic() < deadline:
            for proc in self.operators.values():
                if proc.proc is not None and proc.proc.poll() not in (None, -9):
                    pytest.fail(f"operator {proc.identity} exited with {proc.proc.returncode}:\n{proc.log_tail()}")
            with contextlib.suppress(ApiException, OSError):
                problems = self.not_converged(rotation)
                if not problems:
                    return time.monotonic()
            time.sleep(2)
        pytest.fail(f"{what}: not converged within {timeout:.0f} s; {len(problems)} left, e.g. {problems[:5]}")


@pytest.fixture
def stack(kube: Any, operator_kubeconfig: Path, tmp_path: Path, request: pytest.FixtureRequest,
          caplog: pytest.LogCaptureFixture) -> Iterator[Stack]:
    caplog.set_level(logging.DEBUG)
    name = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    namespace = kube.namespace(f"faults-{name}")
    proxy = FaultProxy()
    dev = DevServer(DevServerSettings(port=0, initial_access_token=IAT, issuer=proxy.url)).start()
    proxy.upstream_port = dev.port
    kube.secret(namespace, "iat", {"token": IAT})
    kube.server(namespace, "dev", {"issuer": proxy.url,
                                   "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = Stack(kube, namespace, dev, proxy, operator_kubeconfig, logs)
    started = time.monotonic()
    try:
        yield stack
    finally:
        for proc in stack.operators.values():
            proc.stop()
        proxy.close()
        dev.stop()
        stack.report["wall_seconds"] = round(time.monotonic() - started, 1)
        request.node.user_properties.extend(stack.report.items())
        print(f"\n[operator faults] {request.node.name} N={N} seed={SEED}: {json.dumps(stack.report)}")


# --- after recovery ---------------------------------------------------------------------------------------

def token_works(creds: dict[str, str]) -> bool:
    record = RegistrationRecord(client_id=creds["client_id"], client_secret=SecretStr(creds["client_secret"]),
                                token_endpoint=creds["token_endpoint"])
    with HttpClient() as http:
        return bool(client_credentials_token(http, record).access_token.get_secret_value())


def issued_secrets(stack: Stack, records: dict[str, RegistrationRecord]) -> set[str]:
    found = set(stack.proxy.issued_secrets()) | {IAT}
    for record in records.values():
        for value in (record.client_secret, record.registration_access_token):
            if value is not None:
                found.add(value.get_secret_value())
    return found


def assert_recovered(stack: Stack, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], *,
                     max_orphans: int = 0) -> set[str]:
    """Ready, working credentials, AS == records (at most ``max_orphans`` extra), no secret in any log.
    Returns the orphans (clients at the AS no record knows)."""
    proxy = stack.proxy
    proxy.clear()
    proxy.up()
    problems = stack.not_converged()
    assert not problems, problems[:10]

    items = {c["metadata"]["name"]: c for c in stack.clients()}
    records = stack.records()
    credentials = stack.secrets("credentials")
    assert sorted(records) == sorted(items) == sorted(credentials)
    for name, record in records.items():
        assert items[name]["status"]["clientId"] == record.client_id == credentials[name]["client_id"], name
    with ThreadPoolExecutor(8) as pool:
        working = dict(zip(credentials, pool.map(token_works, credentials.values()), strict=True))
    assert all(working.values()), [name for name, ok in working.items() if not ok]

    declared = {r.client_id for r in records.values()}
    assert len(declared) == N, "two OAuthClients share one registration"
    at_as = stack.clients_at_as()
    assert len(at_as) == len(set(at_as)), "the AS lists a client twice"
    assert declared <= set(at_as), {"missing at the AS": sorted(declared - set(at_as))}
    orphans = set(at_as) - declared
    answered = {r.client_id for r in proxy.registrations}
    # An orphan can only be a registration the AS answered through the proxy: nothing else creates clients.
    assert orphans <= answered, sorted(orphans - answered)
    stack.report["orphans"] = len(orphans)
    stack.report["registrations_at_as"] = len(answered)
    assert len(orphans) <= max_orphans, f"{len(orphans)} orphan(s) at the AS (at most {max_orphans} allowed)"

    captured = capfd.readouterr()
    proxy_log = "\n".join(f"{a.at:.3f} {a.method} {a.path} {a.key} {a.status} {a.retry_after}"
                          for a in proxy.arrivals)
    texts = {f"operator {proc.identity} log": proc.log_text() for proc in stack.operators.values()}
    texts.update({"proxy log": proxy_log, "captured logging": caplog.text, "stdout": captured.out,
                  "stderr": captured.err})
    secrets = issued_secrets(stack, records)
    assert len(secrets) >= 2 * N
    leaked = {where: s[:4] + "…" for s in secrets for where, text in texts.items() if s in text}
    assert not leaked, f"secrets found in logs: {leaked}"
    print(captured.out, end="")
    return orphans


def assert_primary_untouched(stack: Stack, primary: OperatorProcess) -> None:
    """The session's operator serves every namespace but only OAuthClients without the shard label."""
    assert f'namespace="{stack.namespace}"' not in primary.metrics()


def answered(proxy: FaultProxy, status: int) -> int:
    return sum(1 for a in proxy.arrivals if a.status == status)


def registered_twice(proxy: FaultProxy) -> dict[str, list[float]]:
    """Registration bodies (so clients) the AS answered 201 more than once, with when they arrived."""
    times: dict[str, list[float]] = defaultdict(list)
    for a in proxy.arrivals:
        if a.method == "POST" and a.path.startswith("/register") and a.status == 201:
            times[a.key].append(round(a.at, 2))
    return {key: when for key, when in times.items() if len(when) > 1}


def registrations_by_key(proxy: FaultProxy) -> dict[str, list[Any]]:
    by_key: dict[str, list[Any]] = defaultdict(list)
    for arrival in proxy.arrivals:
        by_key[arrival.key].append(arrival)
    return by_key


# --- the scenarios ----------------------------------------------------------------------------------------

def test_5xx_bursts_during_convergence(stack: Stack, operator: OperatorProcess, caplog: pytest.LogCaptureFixture,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    """Three bursts of N/10 5xx answers while N clients register: 503 to any request, 503 to registrations
    only, 502 to any request. A 5xx to a discovery GET is retried in place; to a registration it is not
    (the AS may have acted): the reconcile fails and backs off, and its next attempt registers. Nothing
    was forwarded for an injected 5xx, so no orphan and no duplicate."""
    proxy, burst = stack.proxy, max(2, N // 10)
    stack.operator().start()
    created = stack.create_clients()
    # Any request (mostly discovery GETs, retried in place), then registrations only, then any again.
    bursts = ((N // 5, 503, False), (2 * N // 5, 503, True), (3 * N // 5, 502, False))
    for i, (k, status, only_registration) in enumerate(bursts, 1):
        proxy.wait_for(lambda p, k=k: p.forwarded_registrations >= k, timeout=bound(1.0))
        proxy.fail_next(burst, status, only_registration=only_registration)
        # Used up before the next one is armed (arming replaces what is left of a burst).
        proxy.wait_for(lambda p, i=i: answered(p, 503) + answered(p, 502) == i * burst, timeout=bound(1.0))
    converged = stack.wait_converged("5xx bursts", bound(2.0))
    # Exactly one registration reached the AS per client: a 503'd POST never did, and nothing was repeated.
    assert proxy.forwarded_registrations == N
    failed_posts = proxy.count("POST", "/register", 503) + proxy.count("POST", "/register", 502)
    assert failed_posts >= burst
    stack.report.update(converge_seconds=round(converged - created, 1), injected_5xx=3 * burst,
                        registrations_answered_5xx=failed_posts)
    assert_recovered(stack, caplog, capfd)
    assert_primary_untouched(stack, operator)


OUTAGE = 60.0


def test_as_down_60s_during_convergence(stack: Stack, caplog: pytest.LogCaptureFixture,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    """The AS stops listening (connection refused) after N/4 registrations, for 60 s, then comes back.
    Connection errors are retried in place, then the reconcile fails as ServerUnreachable and backs off;
    once the AS is back every client registers exactly once."""
    proxy = stack.proxy
    operator = stack.operator().start()
    created = stack.create_clients()
    proxy.wait_for(lambda p: p.forwarded_registrations >= N // 4, timeout=bound(1.0))
    proxy.down()
    time.sleep(OUTAGE)  # the fault itself
    before = proxy.forwarded_registrations  # requests already inside the proxy were answered
    unreachable = metric(operator, 'clientreg_reconcile_errors_total{reason="ServerUnreachable"}')
    proxy.up()
    up = time.monotonic()
    converged = stack.wait_converged("after the AS came back", bound(2.0))
    assert proxy.forwarded_registrations == N
    stack.report.update(registered_before_outage=before, failed_reconciles_during_outage=unreachable,
                        recovery_seconds=round(converged - up, 1), converge_seconds=round(converged - created, 1))
    assert_recovered(stack, caplog, capfd)


SLOW = 5.0


def test_slow_as_answers_after_5s(stack: Stack, caplog: pytest.LogCaptureFixture,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    """Every request held 5 s before the AS sees it (below the default 10 s timeout): nothing times out,
    so nothing is repeated: exactly one registration per client."""
    proxy = stack.proxy
    proxy.delay(SLOW)
    # The default drift interval: 60 s of the others would add a 5 s read per registered client midway.
    stack.operator("faults", "--drift-check-interval", "10m").start()
    created = stack.create_clients()
    converged = stack.wait_converged("slow AS", bound(10.0 * SLOW / WORKERS + 2))
    assert proxy.count("POST", "/register") == proxy.forwarded_registrations == N
    stack.report.update(converge_seconds=round(converged - created, 1), requests=len(proxy.arrivals))
    assert_recovered(stack, caplog, capfd)


RETRY_AFTER = 1.0


def test_429_storm_honours_retry_after(stack: Stack, caplog: pytest.LogCaptureFixture,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    """Every distinct request is answered 429 with Retry-After: 1, twice, before it is let through. A 429
    means the AS did not act, so even a registration is repeated in place, but never sooner than asked.

    Checked per request key that names one client (a registration's body names it, an RFC 7592 path its
    client ID): every 429 is followed by that client's next attempt no sooner than Retry-After. Discovery is
    one URL fetched by the reconciles' shared connection and by both operators' server checks, so its
    arrivals cannot be told apart by caller; only the first two of them were refused."""
    proxy = stack.proxy
    proxy.rate_limit(2, retry_after=RETRY_AFTER)
    stack.operator().start()
    created = stack.create_clients()
    converged = stack.wait_converged("429 storm", bound(2.0 * RETRY_AFTER * 3))
    proxy.rate_limit(0, retry_after=0)

    by_key = registrations_by_key(proxy)
    per_client = {k: v for k, v in by_key.items() if k.startswith(("POST /register ", "GET /register/",
                                                                    "PUT /register/", "DELETE /register/"))}
    assert sum(1 for k in per_client if k.startswith("POST /register ")) == N
    early, gaps = [], []
    for key, arrivals in per_client.items():
        assert [a.status for a in arrivals][:3] in ([429, 429, 201], [429, 429, 200]), (key, arrivals)
        for before, after in itertools.pairwise(arrivals):
            if before.status == 429:
                assert before.retry_after is not None
                gaps.append(after.at - before.at)
                if after.at - before.at < before.retry_after:
                    early.append((key, round(after.at - before.at, 3)))
    assert not early, f"came back sooner than Retry-After asked: {early[:10]}"
    shared = [a for k, v in by_key.items() if k not in per_client for a in v]
    assert sum(1 for a in shared if a.status == 429) <= 2 * len({a.key for a in shared})
    assert proxy.forwarded_registrations == N
    stack.report.update(converge_seconds=round(converged - created, 1), answered_429=answered(proxy, 429),
                        shortest_gap_after_429=round(min(gaps), 3))
    assert_recovered(stack, caplog, capfd)


def metric(operator: OperatorProcess, series: str) -> float:
    """One series of the operator's /metrics (0 when absent)."""
    for line in operator.metrics().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_apiserver_restarted_during_convergence(stack: Stack, control_plane: Any, operator: OperatorProcess,
                                                caplog: pytest.LogCaptureFixture,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """kube-apiserver stopped (SIGTERM) and started again on the same etcd after N/3 registrations.

    While it is away a leader cannot renew its Lease; past the renew deadline it steps down by exiting
    (status 3, leader.py), as client-go's leader election does, and the kubelet starts it again. The test
    plays the kubelet for the fault operator and for the session's operator, which must be Ready and
    leading again afterwards."""
    proxy = stack.proxy
    faults = stack.operator().start()
    created = stack.create_clients()
    proxy.wait_for(lambda p: p.forwarded_registrations >= N // 3, timeout=bound(1.0))
    stopping = time.monotonic()
    control_plane.restart_apiserver()
    back = time.monotonic()
    stepped_down = [proc.identity for proc in (faults, operator) if restart_if_stepped_down(proc)]
    converged = stack.wait_converged("after the API server restart", bound(2.0))
    assert proxy.forwarded_registrations == N, (round(stopping, 2), round(back, 2), registered_twice(proxy))
    stack.report.update(apiserver_away_seconds=round(back - stopping, 1), stepped_down=stepped_down,
                        recovery_seconds=round(converged - back, 1), converge_seconds=round(converged - created, 1))
    assert_recovered(stack, caplog, capfd)
    wait_for(operator.ready, "the session's operator Ready", timeout=60)
    wait_for(operator.is_leader, "the session's operator leading", timeout=60)
    assert_primary_untouched(stack, operator)


def restart_if_stepped_down(proc: OperatorProcess, settle: float = 90.0) -> bool:
    """What the kubelet does for a container that exits: start it again. Only a leader that lost its Lease
    may exit (status 3); waits ``settle`` seconds for a process on its way out. True when restarted."""
    assert proc.proc is not None
    deadline = time.monotonic() + settle
    while proc.proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if proc.is_leader():
                return False
        time.sleep(0.5)
    if proc.proc.poll() is None:
        return False
    assert proc.proc.returncode == EXIT_LOST_LEASE, f"operator {proc.identity} exited with {proc.proc.returncode}"
    proc.start()
    return True


KILLS = 20


def test_operator_sigkilled_at_20_random_points(stack: Stack, caplog: pytest.LogCaptureFixture,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """The operator is SIGKILLed at 10 random points while N clients register, and at 10 more while all N
    rotate (the rotate annotation; gracePeriod 1s, so each old client is deleted soon after), and started
    again after each kill. A kill point is "the AS has answered K registrations since the phase began",
    K random, then a random 0-0.5 s more, so kills land anywhere in a reconcile.

    The crash window (docs/reliability.md) is the only accepted source of orphans: a kill between the AS's
    answer to a registration, or to an RFC 7592 read that rotated the registration access token, and the
    record Secret being written. Each worker has at most one such answer in flight, so orphans are bounded
    by kills x workers; the measured number is reported."""
    rng = random.Random(SEED)
    proxy = stack.proxy
    # No drift check within the test: only the rotate annotation itself can start the rotation.
    faults = stack.operator("faults", "--drift-check-interval", "10m")
    faults.start()
    created = stack.create_clients()
    kills: list[int] = []

    def kill_during(phase: str, count: int, base: int) -> None:
        for k in sorted(rng.sample(range(1, N), count)):
            proxy.wait_for(lambda p, k=k: p.forwarded_registrations >= base + k, timeout=bound(1.0))
            time.sleep(rng.uniform(0, 0.5))
            faults.kill()
            kills.append(proxy.forwarded_registrations - base)
            faults.start()
        print(f"[operator faults] {phase}: killed after {kills[-count:]} registrations of the phase")

    kill_during("convergence", KILLS // 2, base=0)
    converged = stack.wait_converged("after 10 kills", bound(2.0))
    rotating = time.monotonic()
    base = proxy.forwarded_registrations
    stack.rotate_all("faults-1")
    kill_during("rotation", KILLS - KILLS // 2, base)
    rotated = stack.wait_converged("rotation after 10 kills", bound(2.0), rotation="faults-1")
    orphans = assert_recovered(stack, caplog, capfd, max_orphans=len(kills) * WORKERS)
    # Which window each orphan came from: a client whose registration access token the AS rejected had been
    # written down (so its registration was not lost): the token an update rotated was. Since clientreg.liveness
    # such a client is not replaced but reported (RegistrationAccessTokenRevoked), so this count stays 0 unless
    # a kill lands in that window; the client then waits for a person, named in a Warning.
    rejected = " ".join(e.message or "" for e in stack.core.list_namespaced_event(
        stack.namespace, field_selector="reason=RegistrationAccessTokenRevoked").items)
    lost_token = sum(1 for client_id in orphans if client_id in rejected)
    stack.report.update(kills=len(kills), orphans_lost_registration=len(orphans) - lost_token,
                        orphans_lost_rotated_token=lost_token, converge_seconds=round(converged - created, 1),
                        rotate_seconds=round(rotated - rotating, 1))


def test_two_replicas_racing(stack: Stack, caplog: pytest.LogCaptureFixture,
                             capfd: pytest.CaptureFixture[str]) -> None:
    """Two replicas started at the same moment while the N OAuthClients are created: one takes the Lease, the
    other serves probes and waits. After N/2 registrations the proxy holds the next ones before the AS sees
    them; once all N/2 are written down the leader is SIGKILLed (no release) and the standby takes over when
    the Lease expires. Nothing was in flight at the AS, so: exactly N registrations, no orphan."""
    proxy = stack.proxy
    proxy.hold_registrations_after(N // 2)
    a, b = stack.operator("faults-a"), stack.operator("faults-b")
    with ThreadPoolExecutor(3) as pool:
        starting = [pool.submit(a.start), pool.submit(b.start)]
        creating = pool.submit(stack.create_clients)
        for future in starting:
            future.result()
        created = creating.result()
    wait_for(lambda: a.is_leader() or b.is_leader(), "one replica leading", timeout=60)
    leader, standby = (a, b) if a.is_leader() else (b, a)
    assert not standby.is_leader() and lease_holder(stack) == leader.identity

    wait_for(lambda: len(stack.records()) >= N // 2 and proxy.held >= 1, "N/2 registrations written down",
             timeout=bound(1.0), interval=1.0)
    # The standby serves its probes and metrics but has reconciled nothing.
    assert "clientreg_reconcile_total{" not in standby.metrics()
    leader.kill()
    killed = time.monotonic()
    proxy.clear()  # drops what was held for the dead leader, holds nothing more
    wait_for(standby.is_leader, "the standby taking over", timeout=60)
    took_over = time.monotonic()
    assert lease_holder(stack) == standby.identity
    converged = stack.wait_converged("after the failover", bound(2.0))
    assert proxy.forwarded_registrations == N
    stack.report.update(failover_seconds=round(took_over - killed, 1), recovery_seconds=round(converged - killed, 1),
                        converge_seconds=round(converged - created, 1))
    assert_recovered(stack, caplog, capfd)


def lease_holder(stack: Stack) -> str | None:
    lease = client.CoordinationV1Api(stack.kube.api).read_namespaced_lease(LEASE, OPERATOR_NAMESPACE)
    holder: str | None = lease.spec.holder_identity
    return holder
