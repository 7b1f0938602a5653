"""bench/kube_requests.py compares like with like: both transports send the same requests to the same API
server and read back the same object, the one the other patched. Nothing is timed here; the bench prints it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from support.kube import ControlPlane

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from kube_requests import NAME, OFFICIAL, OURS, compare  # a bench script, found on the path set just above


def test_both_transports_send_the_same_requests_and_read_the_same_secret(control_plane: ControlPlane) -> None:
    api = control_plane.api_client()
    try:
        results: dict[str, Any] = compare(api, 5)
    finally:
        api.close()
    ours, theirs = results[OURS]["last_read"], results[OFFICIAL]["last_read"]
    assert ours["metadata"]["name"] == theirs["metadata"]["name"] == NAME and ours["data"] == {"k": "dg=="}
    # Each run's last patch set annotation bench=4; ours ran second, so its read shows a newer version.
    assert ours["metadata"]["annotations"]["bench"] == theirs["metadata"]["annotations"]["bench"] == "4"
    assert int(ours["metadata"]["resourceVersion"]) > int(theirs["metadata"]["resourceVersion"])
    assert all(figures["cpu_us_per_request"] > 0 for figures in results.values())
