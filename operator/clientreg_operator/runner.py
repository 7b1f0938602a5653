"""``clientreg-operator run``: probes and metrics, leader election, then the controllers until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from clientreg_kube.cluster import KubeCluster
from clientreg_kube.transport import KubeTransport, UnsupportedConfiguration

from . import logs
from .config import OperatorConfig
from .connections import Connections
from .controller import ClientController
from .docfeed import RecordFeed
from .documents import DocumentIndex
from .endpoints import Health, serve
from .kubeapi import AsyncKube, throttle_token_refresh
from .leader import LeaseElector
from .metrics import Metrics
from .reconciler import Reconciler
from .records import RecordStore
from .servers import ServerChecker
from .watches import SecretIndex, ServerCache, informers, run_until, watch_streams_for

log = logging.getLogger("clientreg_operator")

EXIT_LOST_LEASE = 3
#: Seconds between two sweeps of the records namespace.
SWEEP_INTERVAL = 3600.0
#: Seconds a starting replica waits for its first list of the record Secrets before it says it is ready.
FIRST_LIST_PATIENCE = 10.0


def _configuration(cfg: OperatorConfig) -> k8s.Configuration:
    """The credentials every request logs in with: --kubeconfig, else the Pod's ServiceAccount, else the
    default kubeconfig. The reconciles' transport and the watches (kubeapi.AsyncKube) share it."""
    configuration = k8s.Configuration()
    if cfg.kubeconfig:
        k8s_config.load_kube_config(config_file=cfg.kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    throttle_token_refresh(configuration)
    return configuration


async def _heartbeat(health: Health, stop: asyncio.Event) -> None:
    while not stop.is_set():
        health.beat()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


async def operate(cfg: OperatorConfig, *, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # Everything imported so far lives as long as the process: out of the collector's way (gc.freeze), so a
    # collection walks the objects of reconciles and watch events only, not the ~76 MiB of modules.
    gc.freeze()
    metrics = Metrics()
    health = Health()
    documents = DocumentIndex(cfg.document_hosts)
    servers = []
    if cfg.probe_address:
        servers.append(await serve(cfg.probe_address, health=health))
    if cfg.metrics_address:
        servers.append(await serve(cfg.metrics_address, metrics=metrics, documents=documents))
    heartbeat = asyncio.create_task(_heartbeat(health, stop))
    configuration = _configuration(cfg)
    transport = KubeTransport(configuration)
    # Every replica, before and whatever the election: the Service balances document fetches over all of them.
    feed_api = AsyncKube(configuration, watch_streams=1)  # the record Secrets' watch
    record_feed = RecordFeed(KubeCluster(transport), documents, namespace=cfg.records_namespace,
                             interval=cfg.document_sync_interval, api=feed_api)
    feed = asyncio.create_task(record_feed.run(stop))
    elector: LeaseElector | None = None
    holding: asyncio.Task[bool] | None = None
    lost = False
    controller: ClientController | None = None
    checker: ServerChecker | None = None
    watch_api: AsyncKube | None = None
    sweeping: asyncio.Task[None] | None = None
    try:
        # Ready once the documents are listed (or a while later when the API server is away): a replica that
        # joins the Service must not answer 404 for documents the others serve.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(record_feed.listed.wait(), FIRST_LIST_PATIENCE)
        health.ready = True
        if cfg.leader_election:
            elector = LeaseElector(transport, namespace=cfg.lease_namespace, name=cfg.lease_name, identity=cfg.identity,
                                   lease_duration=cfg.lease_duration)
            if not await elector.acquire(stop):
                return 0
            metrics.leader.set(1)
            holding = asyncio.create_task(elector.hold(stop))
            # Losing the Lease stops the controllers: the process exits and is restarted as a standby.
            holding.add_done_callback(lambda task: stop.set())
        else:
            metrics.leader.set(1)

        cluster = KubeCluster(transport)
        server_cache, owned_secrets = ServerCache(cluster.get_server), SecretIndex()
        connections = Connections(cluster, cluster_resource_namespace=cfg.cluster_resource_namespace,
                                  http_factory=metrics.http_factory, address_policies=cfg.address_policies,
                                  get_server=server_cache)
        reconciler = Reconciler(cluster, connections, drift_check_interval=cfg.drift_check_interval,
                                metrics=metrics, backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max,
                                documents=documents, records_namespace=cfg.records_namespace)
        watch_api = AsyncKube(configuration, watch_streams=watch_streams_for(
            cfg.namespaces, watch_credentials=cfg.watch_credentials))
        controller = ClientController(reconciler, workers=cfg.workers,
                                      restart_deployments=cfg.restart_deployments,
                                      records_namespace=cfg.records_namespace)
        checker = ServerChecker(cluster, cluster_resource_namespace=cfg.cluster_resource_namespace,
                                address_policies=cfg.address_policies)
        watched = informers(watch_api, controller, checker, namespaces=cfg.namespaces,
                            label_selector=cfg.label_selector, watch_credentials=cfg.watch_credentials,
                            servers=server_cache, secrets=owned_secrets)
        reconciler.records.legacy_absent = owned_secrets.absent
        reconciler.read_client, reconciler.status_written = controller.read_client, controller.status_written
        log.info("serving %s; records in namespace %s", "all namespaces" if cfg.clusterwide
                 else ", ".join(cfg.namespaces), cfg.records_namespace)
        sweeping = asyncio.create_task(sweep_records(reconciler.records, stop))
        await run_until(stop, controller, watched)
        if holding is not None and holding.done() and not holding.result():
            lost = True
    finally:
        stop.set()
        heartbeat.cancel()
        if sweeping is not None:
            sweeping.cancel()
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        await feed_api.close()
        if holding is not None:
            with contextlib.suppress(Exception):
                lost = lost or not await holding
        if checker is not None:
            checker.close()
        if controller is not None:
            controller.close()
        if watch_api is not None:
            await watch_api.close()
        if elector is not None and not lost:
            await asyncio.to_thread(elector.release)
        metrics.leader.set(0)
        for server in servers:
            await server.cleanup()
        transport.close()
    return EXIT_LOST_LEASE if lost else 0


async def sweep_records(records: RecordStore, stop: asyncio.Event, interval: float = SWEEP_INTERVAL) -> None:
    """Look for records whose OAuthClient is gone, once at start and then every ``interval`` seconds (see
    :meth:`RecordStore.sweep`: only records their OAuthClient's deletion already released are deleted)."""
    while not stop.is_set():
        try:
            result = await asyncio.to_thread(records.sweep)
            if result.removed or result.orphaned:
                log.info("record sweep: %d removed, %d kept without their OAuthClient, %d live", result.removed,
                         result.orphaned, result.live)
        except Exception as exc:  # the API server away: next time
            log.warning("record sweep failed (%s); trying again later", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def run(cfg: OperatorConfig) -> int:
    logs.configure(cfg.log_format, cfg.log_level)
    try:
        return asyncio.run(operate(cfg))
    except UnsupportedConfiguration as exc:  # a kubeconfig asking for what the transport does not do
        log.error("cannot talk to the Kubernetes API server as configured: %s", exc)
        return 2
