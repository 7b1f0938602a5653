"""The README's first command, `examples/quickstart.sh`, run as a user runs it: the dev AS on 127.0.0.1:9400,
the example clients registered, applied again with nothing to do, listed, and a token obtained."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_registers_the_examples_and_their_credentials_obtain_a_token() -> None:
    # The test's own environment, so the script's `pip install -e .` installs this checkout where it already is.
    env = {**os.environ, "CLIENTREG_VENV": sys.prefix}
    run = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh")], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    sections = {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in run.stdout.split("$ clientreg ")[1:]}
    first, again = (sections[key] for key in sections if key.startswith("apply"))
    names = sorted(p.stem for p in (ROOT / "examples" / "clients").glob("*.yaml") if p.stem != "00-server")
    rows = [line.split() for line in first.strip().splitlines()[1:]]
    assert sorted(row[1] for row in rows) == names == ["billing-worker", "web-portal"]
    assert [row[2:4] for row in rows] == [["True", "NotRegistered"]] * 2
    assert [line.split()[2:4] for line in again.strip().splitlines()[1:]] == [["True", "InSync"]] * 2  # nothing done
    listed = json.loads(sections["get -o json"])
    assert {c["clientId"] for c in listed} == {row[4] for row in rows} and all(c["ready"] for c in listed)
    assert "token obtained from http://127.0.0.1:9400/token (type Bearer" in sections["token billing-worker"]
    with socket.socket() as probe:  # the script's trap stopped its dev AS
        assert probe.connect_ex(("127.0.0.1", 9400)) != 0
