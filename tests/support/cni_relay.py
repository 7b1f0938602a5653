"""A chained CNI plugin for the test node: each Pod's 127.0.0.1:<port> relays to the host's 127.0.0.1:<port>.

The test's API server and authorization servers listen on the host's loopback only; a Pod has its own
network namespace. Chained after ``bridge`` in the node's CNI configuration (support/node.py), this
plugin starts, on ADD, a relay process bound inside the Pod's namespace (see support.netns) before any
of the Pod's containers starts, and stops it on DEL. It also records which namespace belongs to which
Pod, so the tests can reach a Pod's ports on its own loopback.

CNI (https://www.cni.dev/docs/spec/): the runtime runs the plugin with ``CNI_COMMAND``, ``CNI_NETNS``,
``CNI_CONTAINERID`` and ``CNI_ARGS`` in the environment and the network configuration (with the previous
plugin's ``prevResult``) on stdin; a chained plugin that changes nothing prints ``prevResult`` back.

    python -m support.cni_relay              (as a CNI plugin)
    python -m support.cni_relay serve NETNS STATE_DIR ID PORT...   (the relay process it starts)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.netns import PodNetwork

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]


def _serve(netns: str, state: Path, container_id: str, ports: list[int]) -> None:
    network = PodNetwork(path=Path(netns))
    for port in ports:
        network.relay(port)
    # Written once every listener is bound: the plugin's ADD returns only then.
    (state / f"{container_id}.pid").write_text(str(os.getpid()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(3600):
        pass
    network.close()


def _cni_args() -> dict[str, str]:
    pairs = (item.split("=", 1) for item in os.environ.get("CNI_ARGS", "").split(";") if "=" in item)
    return dict(pairs)


def _plugin() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}))
        return 0
    config = json.load(sys.stdin)
    state = Path(config["stateDir"])
    state.mkdir(parents=True, exist_ok=True)
    container_id = os.environ["CNI_CONTAINERID"]
    pidfile = state / f"{container_id}.pid"
    if command == "ADD":
        netns = os.environ["CNI_NETNS"]
        with open(state / f"{container_id}.log", "ab") as log:
            subprocess.Popen([sys.executable, "-m", "support.cni_relay", "serve", netns, str(state), container_id,
                              *map(str, config["ports"])], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
        deadline = time.monotonic() + 20
        while not pidfile.exists():
            if time.monotonic() > deadline:
                print(json.dumps({"cniVersion": config["cniVersion"], "code": 999,
                                  "msg": "loopback relay did not start", "details": str(state)}))
                return 1
            time.sleep(0.05)
        args = _cni_args()
        pod = f"{args.get('K8S_POD_NAMESPACE', '')}_{args.get('K8S_POD_NAME', '')}"
        (state / f"pod-{pod}").write_text(netns)
        print(json.dumps(config.get("prevResult") or {"cniVersion": config["cniVersion"]}))
        return 0
    if command == "DEL":
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            pidfile.unlink(missing_ok=True)
        return 0
    return 0  # CHECK, GC, STATUS: nothing to verify beyond the relay process


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        _serve(argv[1], Path(argv[2]), argv[3], [int(p) for p in argv[4:]])
        return 0
    return _plugin()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
