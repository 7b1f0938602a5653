"""The real kstatus library (sigs.k8s.io/cli-utils, behind Flux's health checks) reads the status the
operator writes as intended: Current when settled, Failed on a terminal reason, InProgress otherwise.

Unit-level scenarios (tests/unit/test_operator_kstatus_conditions.py builds each status block with the
real reconciler against in-memory fakes), but they need the Go checker built from the module proxy
(tests/support/kstatus_tool.py), so they live with the other built components.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.cache import unavailable
from support.kstatus_tool import compute, ensure_kstatus
from support.kube import ComponentUnavailable

# The scenarios module imports its siblings the way tests/unit does (pytest puts that folder on the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_operator_kstatus_conditions import SCENARIOS

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def kstatus() -> Path:
    try:
        return ensure_kstatus()
    except ComponentUnavailable as exc:
        unavailable("kstatus (sigs.k8s.io/cli-utils)", str(exc))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kstatus_reads_each_status_the_operator_writes_as_intended(kstatus: Path, name: str) -> None:
    scenario = SCENARIOS[name]
    body = scenario.build()
    [verdict] = compute(kstatus, body)
    assert verdict.get("status") == scenario.kstatus, verdict
    if scenario.kstatus == "Failed":
        # The health check's failure carries the operator's message, which names what to fix.
        ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        assert verdict["message"] == ready["message"]


def test_a_terminal_reason_is_failed_even_while_old_credentials_keep_ready(kstatus: Path) -> None:
    body = SCENARIOS["in-sync"].build()
    conditions = body["status"]["conditions"]
    # The same status with a standing terminal reason (e.g. the AS keeps other values than declared).
    conditions.append({"type": "Stalled", "status": "True", "reason": "ServerRefusedValue", "message": "kept"})
    assert compute(kstatus, body)[0]["status"] == "Failed"


def test_a_new_generation_is_in_progress_whatever_the_conditions_say(kstatus: Path) -> None:
    body = SCENARIOS["invalid-spec"].build()
    body["metadata"]["generation"] += 1  # the fix was applied; the operator has not looked yet
    verdict = compute(kstatus, body)[0]
    assert verdict["status"] == "InProgress" and "observed generation is 1" in verdict["message"]
