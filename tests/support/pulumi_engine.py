"""The real Pulumi engine, built offline from the Go module proxy, for the e2e tests.

The Pulumi CLI is built from ``github.com/pulumi/pulumi/pkg/v3``; the two Python shim scripts
(``pulumi-language-python-exec`` and ``pulumi-resource-pulumi-python``) are copied out of the
``github.com/pulumi/pulumi/sdk/v3`` module zip at the version of the installed Python SDK; the
Python language host (``pulumi-language-python``, which ``pulumi up`` in a project folder needs) is
built from the peers' source folder (see ``support.pulumi_python_host``). Stacks live in a local
file backend, so nothing ever talks to Pulumi Cloud or downloads a plugin.

    cd tests && python -m support.pulumi_engine build    # builds (once) and prints the bin folder
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from support.cache import cache_root, component_dir, go_build_tools_module, go_env
from support.go_source import build_once
from support.pulumi_python_host import HOST_NAME, PythonHostUnavailable, install_python_host

PKG_MODULE = "github.com/pulumi/pulumi/pkg/v3"
SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"
# pulumi-language-python's own module, github.com/pulumi/pulumi/sdk/python/cmd/
# pulumi-language-python/v3, is refused by the Go module proxy (403 "not available"), so it is built
# from a source copy (support.pulumi_python_host). Inline Automation API programs do not need it
# (every operation passes --client, the SDK's in-process language server), `pulumi up` in a folder does.

# The CLI would ideally be exactly the SDK's version (3.272.0), but the module proxy serves pkg/v3
# only at v3.260.0 and v3.274.0+ around it. A CLI newer than the SDK is the supported pairing (the
# Automation API only demands a minimum CLI version), so the nearest newer patch release is used.
# pkg/v3 replaces sdk/v3 with a relative path in its own go.mod, which a consumer ignores, so the
# tools module pins sdk/v3 itself, at the same version pkg/v3 was released with.
CLI_VERSION = "3.274.1"

# pkg/v3's own go.mod swaps github.com/atotto/clipboard for a fork, and a dependency's replace
# directives never apply to the module that consumes it, so the tools module repeats it.
CLIPBOARD_FORK = "github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
CLI_REPLACES = {"github.com/atotto/clipboard": CLIPBOARD_FORK}

# otel/bridge/opentracing (via pkg/v3) lists github.com/opentracing-contrib/go-grpc/test, whose go.mod
# requires go-grpc at v0.0.0 behind a local replace; the proxy has no v0.0.0, so `go mod tidy` fails.
# Excluding it makes Go take the next version up, v0.1.4, which the graph requires anyway.
CLI_EXCLUDES = ("github.com/opentracing-contrib/go-grpc v0.0.0",)

# The shims' paths inside the sdk/v3 module zip, and their names in the bin folder.
SHIMS = {
    "python/cmd/pulumi-language-python-exec": "pulumi-language-python-exec",
    "python/dist/pulumi-resource-pulumi-python": "pulumi-resource-pulumi-python",
}

# A fixed passphrase is fine: the stacks are throwaway, and the point is that secrets are encrypted.
TEST_PASSPHRASE = "clientreg-e2e-passphrase"

# Points at a folder that already holds the executables (e.g. the bin folder of an official Pulumi
# install), to skip the build.
BIN_OVERRIDE_VAR = "CLIENTREG_PULUMI_BIN"

_TESTS_DIR = Path(__file__).resolve().parents[1]


class PulumiUnavailable(RuntimeError):
    """The engine cannot be built on this machine (no Go toolchain); tests skip on it outside CI."""


def sdk_version() -> str:
    return importlib.metadata.version("pulumi")


def engine_dir() -> Path:
    # Keyed by both versions: the CLI comes from pkg/v3, the shims from the SDK's own sdk/v3 zip.
    return component_dir("pulumi", f"{CLI_VERSION}-sdk{sdk_version()}")


def required_executables() -> tuple[str, ...]:
    return ("pulumi", "pulumi-language-python-exec", "pulumi-resource-pulumi-python", HOST_NAME)


def _module_zip(module: str, version: str, log: Path) -> Path:
    with open(log, "a") as out:
        result = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@v{version}"],
            cwd=cache_root(),
            env=go_env(),
            check=True,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
        )
    return Path(json.loads(result.stdout)["Zip"])


def _copy_shims(bin_dir: Path, log: Path) -> None:
    archive = _module_zip(SDK_MODULE, sdk_version(), log)
    prefix = f"{SDK_MODULE}@v{sdk_version()}/"
    with zipfile.ZipFile(archive) as zf:
        for member, name in SHIMS.items():
            target = bin_dir / name
            target.write_bytes(zf.read(prefix + member))
            # Module zips carry no mode bits; the engine execs these directly.
            target.chmod(0o755)


def _build(folder: Path) -> None:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    log = folder / "build.log"
    started = time.monotonic()
    go_build_tools_module(
        workdir=folder / "src",
        module_name="tools/pulumi",
        requires={PKG_MODULE: f"v{CLI_VERSION}", SDK_MODULE: f"v{CLI_VERSION}"},
        replaces=CLI_REPLACES,
        excludes=CLI_EXCLUDES,
        packages={f"{PKG_MODULE}/cmd/pulumi": bin_dir / "pulumi"},
        # osusergo: os/user in pure Go, since cgo is off; grpcnotrace: no x/net/trace debug pages.
        tags="osusergo,grpcnotrace",
        # `pulumi version` prints this stamp, and the Automation API checks it against its minimum.
        ldflags=f"-s -w -X {SDK_MODULE}/go/common/version.Version=v{CLI_VERSION}",
        log=log,
    )
    _copy_shims(bin_dir, log)
    (folder / "build-seconds.txt").write_text(f"{time.monotonic() - started:.0f}\n")


def _unavailable(reason: str) -> PulumiUnavailable:
    return PulumiUnavailable(f"{reason}; or set {BIN_OVERRIDE_VAR} to a folder holding "
                             f"{', '.join(required_executables())}")


def ensure_pulumi() -> Path:
    """Build (once, cached) and return the bin folder holding the Pulumi CLI, the Python shims and
    the Python language host."""
    override = os.environ.get(BIN_OVERRIDE_VAR)
    if override:
        bin_dir = Path(override)
        missing = [n for n in required_executables() if not os.access(bin_dir / n, os.X_OK)]
        if missing:
            raise PulumiUnavailable(f"{BIN_OVERRIDE_VAR}={override} lacks {', '.join(missing)}")
        return bin_dir
    folder = engine_dir()
    # pytest-xdist workers or a CI pre-build running next to a test session never build into it at once.
    build_once(folder, folder / "bin" / "pulumi", lambda: _build(folder), what="the Pulumi CLI",
               unavailable=_unavailable)
    bin_dir = folder / "bin"
    # The host is its own cached component (its source changes apart from the CLI's version), put
    # next to `pulumi` because the CLI looks for language hosts beside itself and on PATH.
    try:
        install_python_host(bin_dir)
    except (PythonHostUnavailable, subprocess.CalledProcessError) as exc:
        raise PulumiUnavailable(f"{HOST_NAME}: {exc}") from exc
    return bin_dir


def pulumi_env(state_dir: Path) -> dict[str, str]:
    """Environment for the CLI with a local file backend under ``state_dir``.

    The Automation API merges this over ``os.environ`` for every CLI call, and the CLI passes it on
    to the plugins it starts, so it also reaches the dynamic provider process.
    """
    bin_dir = ensure_pulumi()
    backend = state_dir / "backend"
    home = state_dir / "home"
    backend.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    python_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(bin_dir), python_dir, os.environ.get("PATH", "")])
    # The provider process unpickles providers by reference, so it must import the same modules as
    # the test: the tests folder (for support.*) goes on PYTHONPATH, ahead of anything inherited.
    pythonpath = os.pathsep.join(p for p in [str(_TESTS_DIR), os.environ.get("PYTHONPATH", "")] if p)
    return {
        "PATH": path,
        "PYTHONPATH": pythonpath,
        # The dynamic provider shim runs "${PULUMI_PYTHON_CMD:-python3}", not `python`: name the
        # interpreter that has pulumi and clientreg installed, whatever python3 on PATH is.
        "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
        "PULUMI_HOME": str(home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # A developer's login or a CI's Pulumi Cloud token must never be picked up.
        "PULUMI_ACCESS_TOKEN": "",
        # Under CI=true the CLI would otherwise switch to CI mode (other display, CI update metadata):
        # CI should run the engine exactly as a developer does.
        "PULUMI_DISABLE_CI_DETECTION": "true",
    }


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    # PulumiCommand() runs `pulumi version` with the process environment, and the CLI then writes a
    # log under $PULUMI_HOME/logs: without this the tests would litter the user's ~/.pulumi.
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def inline_stack(project: str, stack: str, program: Callable[[], None], state_dir: Path) -> auto.Stack:
    """Create or select ``stack`` of an inline ``program``, run by the real CLI on a file backend."""
    bin_dir = ensure_pulumi()
    env = pulumi_env(state_dir)
    work_dir = state_dir / "work" / project
    work_dir.mkdir(parents=True, exist_ok=True)
    with _environ(PULUMI_HOME=env["PULUMI_HOME"]):
        command = auto.PulumiCommand(root=str(bin_dir.parent))
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=env["PULUMI_HOME"],
        env_vars=env,
        secrets_provider="passphrase",
        pulumi_command=command,
        project_settings=auto.ProjectSettings(
            name=project, runtime="python", backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])
        ),
    )
    return auto.create_or_select_stack(stack_name=stack, project_name=project, program=program, opts=opts)


def export_stack_encrypted(stack: auto.Stack) -> dict[str, Any]:
    """``pulumi stack export`` as stored: secrets stay ciphertext.

    The Automation API's ``Stack.export_stack()`` runs ``pulumi stack export --show-secrets``, so
    every secret comes back decrypted as ``{"<secret sig>": ..., "plaintext": "..."}``; it proves
    nothing about what state holds.
    """
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace)
    env = {**({"PULUMI_HOME": workspace.pulumi_home} if workspace.pulumi_home else {}), **workspace.env_vars}
    result = workspace.pulumi_command.run(["stack", "export", "--stack", stack.name], workspace.work_dir, env)
    deployment: dict[str, Any] = json.loads(result.stdout)["deployment"]
    return deployment


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m support.pulumi_engine build", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        bin_dir = ensure_pulumi()
    except PulumiUnavailable as exc:
        print(f"pulumi engine unavailable: {exc}", file=sys.stderr)
        return 1
    print(f"pulumi engine ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
