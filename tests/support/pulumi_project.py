"""A Pulumi project folder run the way users run it: ``pulumi login file://…``, ``pulumi stack init``,
``pulumi up`` in the folder, with the real CLI and language host (support.pulumi_engine) and no cloud.

Unlike :func:`support.pulumi_engine.inline_stack` nothing runs in the test's process: the CLI starts the
language host named by the folder's ``Pulumi.yaml``, which runs the program with the interpreter that
file names (a Python project's ``virtualenv``), so the test's own interpreter and PYTHONPATH stay out. A
run of the provider plugin passes the environment of :func:`support.pulumi_hosts.project_env` instead
(``base_env``): its language hosts and ``pulumi-resource-clientreg`` on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.pulumi_engine import TEST_PASSPHRASE, ensure_pulumi, pulumi_env

#: The secret signature of Pulumi's state: an object carrying it is a secret (ciphertext when stored).
SECRET_SIG = "4dabf18193072939515e22adb298388d"


class PulumiFailed(AssertionError):
    """A CLI command failed; the message holds its output (the user's view of the failure)."""


@dataclass
class ProjectRun:
    """One stack of a project folder, on a file backend of its own under ``state_dir``.

    ``base_env``: the environment every command runs in (default: :meth:`env`'s, the program's own
    interpreter and nothing of the test's).
    """

    folder: Path
    state_dir: Path
    stack: str = "dev"
    timeout: float = 300.0
    base_env: Mapping[str, str] | None = field(default=None, repr=False)
    log: list[str] = field(default_factory=list)

    @property
    def backend(self) -> Path:
        return self.state_dir / "backend"

    def env(self) -> dict[str, str]:
        if self.base_env is not None:
            return dict(self.base_env)
        base = pulumi_env(self.state_dir)
        bin_dir = ensure_pulumi()
        # The test's interpreter must not leak into the program: no PYTHONPATH, no PULUMI_PYTHON_CMD, and
        # its venv's bin folder off PATH. What runs the program is the project's own virtualenv.
        ours = str(Path(sys.executable).parent)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != ours]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PULUMI_PYTHON_CMD", "VIRTUAL_ENV")}
        env.update({k: v for k, v in base.items() if k not in ("PYTHONPATH", "PULUMI_PYTHON_CMD",
                                                              "PULUMI_BACKEND_URL")})
        env["PATH"] = os.pathsep.join([str(bin_dir), *path])
        env["PULUMI_CONFIG_PASSPHRASE"] = TEST_PASSPHRASE
        return env

    def __call__(self, *argv: str, check: bool = True, with_stack: bool = True,
                 extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``pulumi <argv>`` in the project folder (``--stack`` added unless ``with_stack`` is false), with
        ``extra_env`` for this one command."""
        flags = ["--stack", self.stack] if with_stack else []
        # Before a "--", which makes everything after it positional (`config set --secret -- key value`).
        cut = argv.index("--") if "--" in argv else len(argv)
        cmd = [str(ensure_pulumi() / "pulumi"), *argv[:cut], *flags, *argv[cut:]]
        result = subprocess.run(cmd, cwd=self.folder, env={**self.env(), **(extra_env or {})}, capture_output=True,
                                text=True, timeout=self.timeout, check=False)
        self.log.append(f"$ pulumi {' '.join(argv)}\n{result.stdout}{result.stderr}")
        if check and result.returncode != 0:
            raise PulumiFailed(f"pulumi {' '.join(argv)} failed ({result.returncode}):\n"
                               f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
        return result

    def init(self) -> None:
        """``pulumi login file://<backend>`` and ``pulumi stack init``, as the docs say."""
        self.backend.mkdir(parents=True, exist_ok=True)
        self("login", self.backend.as_uri(), with_stack=False)
        self("stack", "init", self.stack, "--secrets-provider", "passphrase", with_stack=False)

    def config_secret(self, key: str, value: str) -> None:
        # From stdin, as a user pasting it would: the value never appears on a command line.
        cmd = [str(ensure_pulumi() / "pulumi"), "config", "set", "--secret", key, "--stack", self.stack]
        subprocess.run(cmd, cwd=self.folder, env=self.env(), input=value, capture_output=True, text=True,
                       timeout=self.timeout, check=True)

    def export(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """``pulumi stack export``: secrets as stored (ciphertext) unless ``show_secrets``."""
        argv = ["stack", "export", *(["--show-secrets"] if show_secrets else [])]
        deployment: dict[str, Any] = json.loads(self(*argv).stdout)["deployment"]
        return deployment

    def resources(self, type_: str, *, show_secrets: bool = False) -> dict[str, dict[str, Any]]:
        """The stack's resources of one type by name (the last segment of the URN)."""
        deployment = self.export(show_secrets=show_secrets)
        return {r["urn"].rsplit("::", 1)[1]: r for r in deployment.get("resources", []) if r["type"] == type_}

    def outputs(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self("stack", "output", "--json", "--show-secrets").stdout)
        return result

    def state_text(self) -> str:
        """Every file of the backend (history and .bak checkpoints too): a plaintext secret in any is a leak."""
        return "\n".join(p.read_text(errors="replace") for p in self.backend.rglob("*") if p.is_file())


def plain(value: Any) -> Any:
    """A value of ``pulumi stack export --show-secrets``: secrets come as {sig, plaintext: <JSON text>}."""
    if isinstance(value, dict) and value.get(SECRET_SIG) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value
