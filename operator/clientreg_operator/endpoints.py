"""HTTP endpoints for the kubelet and Prometheus: /healthz, /readyz and /metrics; and, read-only, the
published documents of the clients this operator holds (/documents/<host>/<path>, see documents.py).

They run before leader election, so a standby replica is live and ready (it is doing its job: waiting
to take over), and its /metrics says clientreg_leader 0.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .documents import PREFIX, DocumentIndex
from .metrics import Metrics

log = logging.getLogger(__name__)


class Health:
    def __init__(self, stall_after: float = 60.0) -> None:
        self.stall_after = stall_after
        self.heartbeat = time.monotonic()
        self.ready = False

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.heartbeat < self.stall_after


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve(address: str, *, health: Health | None = None, metrics: Metrics | None = None,
                documents: DocumentIndex | None = None) -> web.AppRunner:
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        ok = health is None or health.alive()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "event loop stalled\n")

    async def readyz(_: web.Request) -> web.Response:
        ok = health is None or health.ready
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "starting\n")

    async def metrics_page(_: web.Request) -> web.Response:
        assert metrics is not None
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def document(request: web.Request) -> web.Response:
        assert documents is not None
        body = documents.get(request.match_info["path"])
        if body is None:
            return web.Response(status=404, text="no such document\n")
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    if health is not None:
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
    if metrics is not None:
        app.router.add_get("/metrics", metrics_page)
    if documents is not None:
        app.router.add_get(PREFIX + "{path:.+}", document, allow_head=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = _split_address(address)
    await web.TCPSite(runner, host, port).start()
    paths = sorted({r.resource.canonical for r in app.router.routes() if r.resource})
    log.info("serving %s on %s", ", ".join(paths), address)
    return runner
