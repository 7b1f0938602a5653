"""``clientreg-operator run``: probes and metrics, leader election, then kopf until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from . import logs
from .cluster import KubeCluster
from .config import OperatorConfig
from .connections import Connections
from .documents import DocumentIndex
from .endpoints import Health, serve
from .handlers import register, settings_for, watch_streams_for
from .leader import LeaseElector
from .metrics import Metrics
from .reconciler import Reconciler
from .runtime import Runtime

log = logging.getLogger("clientreg_operator")

EXIT_LOST_LEASE = 3


def _api_client(cfg: OperatorConfig) -> k8s.ApiClient:
    if cfg.kubeconfig:
        # kopf logs in with this client's configuration (see handlers.register).
        return k8s_config.new_client_from_config(config_file=cfg.kubeconfig)
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.ApiClient()


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
    metrics = Metrics()
    health = Health()
    documents = DocumentIndex()
    servers = []
    if cfg.probe_address:
        servers.append(await serve(cfg.probe_address, health=health))
    if cfg.metrics_address:
        servers.append(await serve(cfg.metrics_address, metrics=metrics, documents=documents))
    heartbeat = asyncio.create_task(_heartbeat(health, stop))
    api = _api_client(cfg)
    elector: LeaseElector | None = None
    holding: asyncio.Task[bool] | None = None
    lost = False
    runtime: Runtime | None = None
    try:
        health.ready = True
        if cfg.leader_election:
            elector = LeaseElector(api, namespace=cfg.lease_namespace, name=cfg.lease_name, identity=cfg.identity,
                                   lease_duration=cfg.lease_duration)
            if not await elector.acquire(stop):
                return 0
            metrics.leader.set(1)
            holding = asyncio.create_task(elector.hold(stop))
            # Losing the Lease stops kopf: the process exits and is restarted as a standby.
            holding.add_done_callback(lambda task: stop.set())
        else:
            metrics.leader.set(1)

        cluster = KubeCluster(api)
        connections = Connections(cluster, cluster_resource_namespace=cfg.cluster_resource_namespace,
                                  http_factory=metrics.http_factory, address_policy=cfg.address_policy)
        reconciler = Reconciler(cluster, connections, drift_check_interval=cfg.drift_check_interval,
                                metrics=metrics, backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max,
                                documents=documents)
        runtime = Runtime(reconciler, workers=cfg.workers, restart_deployments=cfg.restart_deployments)
        registry = kopf.OperatorRegistry()
        register(registry, runtime, label_selector=cfg.label_selector,
                 cluster_resource_namespace=cfg.cluster_resource_namespace, address_policy=cfg.address_policy,
                 watch_streams=watch_streams_for(cfg.namespaces, watch_credentials=cfg.watch_credentials),
                 watch_credentials=cfg.watch_credentials,
                 client_configuration=api.configuration if cfg.kubeconfig else None)
        log.info("serving %s", "all namespaces" if cfg.clusterwide else ", ".join(cfg.namespaces))
        await kopf.operator(registry=registry, settings=settings_for(label_selector=cfg.label_selector),
                            clusterwide=cfg.clusterwide, namespaces=list(cfg.namespaces), standalone=True,
                            stop_flag=stop)
        if holding is not None and holding.done() and not holding.result():
            lost = True
    finally:
        stop.set()
        heartbeat.cancel()
        if holding is not None:
            with contextlib.suppress(Exception):
                lost = lost or not await holding
        if runtime is not None:
            runtime.close()
        if elector is not None and not lost:
            await asyncio.to_thread(elector.release)
        metrics.leader.set(0)
        for server in servers:
            await server.cleanup()
        api.close()
    return EXIT_LOST_LEASE if lost else 0


def run(cfg: OperatorConfig) -> int:
    logs.configure(cfg.log_format, cfg.log_level)
    return asyncio.run(operate(cfg))
