"""Prometheus metrics. Labels never carry a credential, and per-client series are removed with the client."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from clientreg.http import HttpClient, HttpSettings


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("clientreg_reconcile_total", "Reconciles of OAuthClients, by result.",
                                  ["result"], registry=r)
        self.errors = Counter("clientreg_reconcile_errors_total", "Failed reconciles, by reason.", ["reason"],
                              registry=r)
        self.duration = Histogram("clientreg_reconcile_duration_seconds", "Time one reconcile took.",
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.server_requests = Counter("clientreg_server_requests_total",
                                       "HTTP requests to authorization servers, by server, method and status code.",
                                       ["server", "method", "code"], registry=r)
        self.registrations = Counter("clientreg_registrations_total", "Clients registered, by reason.", ["reason"],
                                     registry=r)
        self.rotations = Counter("clientreg_rotations_total", "Credential rotations, by reason.", ["reason"],
                                 registry=r)
        self.secret_expiry = Gauge("clientreg_client_secret_expiration_timestamp_seconds",
                                   "When the client secret of an OAuthClient expires (Unix time); absent when it "
                                   "never expires.", ["namespace", "name", "client_id"], registry=r)
        self.ready = Gauge("clientreg_client_ready", "1 when the OAuthClient's Ready condition is True.",
                           ["namespace", "name"], registry=r)
        self.leader = Gauge("clientreg_leader", "1 while this replica holds the leader Lease.", registry=r)
        self._expiry_labels: dict[tuple[str, str], tuple[str, str, str]] = {}

    def http_factory(self, settings: HttpSettings, server: str) -> HttpClient:
        """HTTP clients whose every answer is counted (retries included)."""
        def count(method: str, _url: str, status: int) -> None:
            # The URL is left out: registration_client_uri paths are per-client and would explode cardinality.
            self.server_requests.labels(server, method, str(status)).inc()
        return HttpClient(settings, on_response=count)

    def client_state(self, namespace: str, name: str, *, ready: bool, client_id: str | None,
                     expires_at: float | None) -> None:
        self.ready.labels(namespace, name).set(1 if ready else 0)
        old = self._expiry_labels.pop((namespace, name), None)
        if old is not None and (client_id is None or expires_at is None or old[2] != client_id):
            self.secret_expiry.remove(*old)
        if client_id is not None and expires_at is not None:
            labels = (namespace, name, client_id)
            self.secret_expiry.labels(*labels).set(expires_at)
            self._expiry_labels[(namespace, name)] = labels

    def forget(self, namespace: str, name: str) -> None:
        old = self._expiry_labels.pop((namespace, name), None)
        if old is not None:
            self.secret_expiry.remove(*old)
        with contextlib.suppress(KeyError):
            self.ready.remove(namespace, name)
