"""Lease-based leader election (coordination.k8s.io/v1), the way controller-runtime and client-go do it.

Several replicas run; the one holding the Lease reconciles, the others wait to take over. A leader that
cannot renew within the lease duration steps down by exiting: a fresh process is the simplest way to be
sure no reconcile of the old term is still running when another replica takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from clientreg.names import path_segment
from clientreg_kube.cluster import Transport

log = logging.getLogger(__name__)


def _micro_time(moment: datetime) -> str:
    # metav1.MicroTime wants exactly six fractional digits.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class LeaseElector:
    def __init__(self, transport: Transport, *, namespace: str, name: str, identity: str,
                 lease_duration: float = 15.0) -> None:
        # Plain JSON through the same transport as the reconciler (see KubeCluster for why not CoordinationV1Api).
        self._api = transport
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration = lease_duration
        # client-go's proportions: renew well within the term, retry a few times per term.
        self.retry_period = max(0.5, lease_duration / 7.5)
        self.renew_deadline = lease_duration * 2 / 3
        self.is_leader = False
        self._last_problem: str | None = None

    def _spec(self, *, acquire_time: str | None, transitions: int) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": acquire_time or now, "renewTime": now, "leaseTransitions": transitions}

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{path_segment(self.namespace, kind='namespace')}/leases"

    def _read(self) -> dict[str, Any]:
        return self._api.request("GET", f"{self._path}/{path_segment(self.name)}")

    def _replace(self, body: dict[str, Any]) -> None:
        self._api.request("PUT", f"{self._path}/{path_segment(self.name)}", body=body)

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True while this replica holds the Lease."""
        try:
            lease = self._read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(acquire_time=None, transitions=0)}
            try:
                self._api.request("POST", self._path, body=body)
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        transitions = spec.get("leaseTransitions") or 0
        acquire_time = _parse_time(spec.get("acquireTime"))
        if holder and holder != self.identity:
            renewed = _parse_time(spec.get("renewTime")) or acquire_time
            duration = timedelta(seconds=spec.get("leaseDurationSeconds") or self.lease_duration)
            if renewed is not None and renewed + duration > datetime.now(UTC):
                return False
            log.info("lease %s/%s of %s expired; taking over", self.namespace, self.name, holder)
            new_spec = self._spec(acquire_time=None, transitions=transitions + 1)
        else:
            acquired = _micro_time(acquire_time) if holder == self.identity and acquire_time else None
            new_spec = self._spec(acquire_time=acquired, transitions=transitions if holder else transitions + 1)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": new_spec}
        try:
            self._replace(body)
        except ApiException as exc:
            if exc.status == 409:  # another replica won this round
                return False
            raise
        return True

    async def _attempt(self) -> bool:
        try:
            result = await asyncio.to_thread(self.try_acquire_or_renew)
        except Exception as exc:  # the API server may be briefly unreachable: just another failed round
            problem = f"{type(exc).__name__}: {getattr(exc, 'status', '') or ''}"
            if problem != self._last_problem:  # once per kind of failure, not once per retry
                log.warning("lease %s/%s: %s", self.namespace, self.name, problem)
            self._last_problem = problem
            return False
        self._last_problem = None
        return result

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica leads (True) or ``stop`` is set (False)."""
        log.info("waiting for lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not stop.is_set():
            if await self._attempt():
                self.is_leader = True
                log.info("acquired lease %s/%s as %s", self.namespace, self.name, self.identity)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_period)
        return False

    async def hold(self, stop: asyncio.Event) -> bool:
        """Renew until ``stop`` is set (returns True) or the Lease is lost (returns False)."""
        loop = asyncio.get_running_loop()
        last_renewal = loop.time()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.retry_period)
                break
            except TimeoutError:
                pass
            if await self._attempt():
                last_renewal = loop.time()
            elif loop.time() - last_renewal > self.renew_deadline:
                self.is_leader = False
                log.error("lost lease %s/%s: stepping down", self.namespace, self.name)
                return False
        return True

    def release(self) -> None:
        """Hand the Lease over at once on a clean shutdown instead of letting it expire."""
        if not self.is_leader:
            return
        try:
            lease = self._read()
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            past = _micro_time(datetime.now(UTC) - timedelta(days=1))
            # An update, not a patch: the chart grants get/create/update on Leases and nothing more.
            self._replace({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"leaseDurationSeconds": max(1, round(self.lease_duration)), "renewTime": past,
                         "acquireTime": past, "leaseTransitions": spec.get("leaseTransitions") or 0}})
            log.info("released lease %s/%s", self.namespace, self.name)
        except ApiException as exc:
            log.warning("could not release lease %s/%s: HTTP %s", self.namespace, self.name, exc.status)
        finally:
            self.is_leader = False
