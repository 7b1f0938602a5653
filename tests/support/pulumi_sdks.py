"""The clientreg package's SDKs (Node.js/TypeScript, Python, Go), generated from the committed schema.json.

Never committed, always rebuilt from ``provider/clientreg_pulumi/plugin/schema.json`` (itself checked
against the spec models by a unit test), so an SDK cannot drift from the schema. ``scripts/build-pulumi-sdks``
runs :func:`build_sdks`; the e2e tests use it too.

- ``nodejs`` and ``python``: ``pulumi package gen-sdk`` (the Node.js language host generates the first), then
  the TypeScript compiled to ``nodejs/bin`` with the package.json beside it, ready for ``file:`` installs.
- ``go``: the Go language host's module is refused by the Go proxy, so ``pulumi-sdkgen-go`` (beside this
  module, ~40 lines around ``pkg/v3/codegen/go``, the generator that host runs) writes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from support.cache import component_dir, go_env
from support.go_source import build_once
from support.pulumi_engine import CLI_EXCLUDES, CLI_REPLACES, CLI_VERSION, PKG_MODULE, SDK_MODULE, ensure_pulumi
from support.pulumi_hosts import ensure_node_modules, ensure_nodejs_host

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "provider" / "clientreg_pulumi" / "plugin" / "schema.json"
SDKGEN_GO_SOURCE = Path(__file__).resolve().parent / "pulumi-sdkgen-go" / "main.go"
LANGUAGES = ("nodejs", "python", "go")


class SdkUnavailable(RuntimeError):
    """An SDK cannot be generated here (no Go toolchain, no node)."""


def ensure_go_sdkgen() -> Path:
    """Build ``pulumi-sdkgen-go`` once (pkg/v3 at the CLI's version); return the binary."""
    folder = component_dir("pulumi-sdkgen-go", CLI_VERSION)
    binary = folder / "bin" / "pulumi-sdkgen-go"

    def build() -> None:
        src = folder / "src"
        src.mkdir()
        lines = ["module clientreg.test/sdkgen", "", "go 1.24", "",
                 f"require (\n\t{PKG_MODULE} v{CLI_VERSION}\n\t{SDK_MODULE} v{CLI_VERSION}\n)", ""]
        lines += [f"replace {old} => {new}" for old, new in CLI_REPLACES.items()]
        lines += [f"exclude {ex}" for ex in CLI_EXCLUDES]
        (src / "go.mod").write_text("\n".join(lines) + "\n")
        shutil.copy(SDKGEN_GO_SOURCE, src / "main.go")
        with open(folder / "build.log", "w") as log:
            for cmd in (["go", "mod", "tidy"], ["go", "build", "-o", str(binary), "."]):
                subprocess.run(cmd, cwd=src, env=go_env(), check=True, stdout=log, stderr=log)

    return build_once(folder, binary, build, what="the Go SDK generator", unavailable=SdkUnavailable)


def build_sdks(out: Path, languages: tuple[str, ...] = LANGUAGES) -> Path:
    """Generate the SDKs of ``languages`` into ``out/<language>`` (replaced whole); returns ``out``."""
    bin_dir = ensure_pulumi()
    env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
           "PULUMI_HOME": str(out / ".pulumi-home")}
    out.mkdir(parents=True, exist_ok=True)
    for language in languages:
        target = out / language
        if target.exists():
            shutil.rmtree(target)
        if language == "go":
            subprocess.run([str(ensure_go_sdkgen()), str(SCHEMA), str(target)], check=True)
            continue
        path = [str(bin_dir)] + ([str(ensure_nodejs_host())] if language == "nodejs" else [])
        subprocess.run([str(bin_dir / "pulumi"), "package", "gen-sdk", str(SCHEMA), "--language", language,
                        "--out", str(out)], check=True, capture_output=True,
                       env={**env, "PATH": os.pathsep.join([*path, env.get("PATH", "")])})
        if language == "nodejs":
            _compile_nodejs(target)
    return out


def _compile_nodejs(folder: Path) -> None:
    """tsc the generated TypeScript into ``bin/`` (what npm consumers import), package.json beside it."""
    if shutil.which("node") is None:
        raise SdkUnavailable("compiling the Node.js SDK needs node (not on PATH)")
    modules = ensure_node_modules()
    (folder / "node_modules").symlink_to(modules, target_is_directory=True)
    subprocess.run(["node", str(modules / "typescript" / "bin" / "tsc")], cwd=folder, check=True,
                   capture_output=True)
    # Kept: bin/ resolves @pulumi/pulumi from here, as after `npm install` in the SDK's folder.
    shutil.copy(folder / "package.json", folder / "bin" / "package.json")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "build":
        print("usage: python -m support.pulumi_sdks build [OUT] [LANGUAGE ...]", file=sys.stderr)
        return 2
    out = Path(args[1]) if len(args) > 1 else REPO / "sdk"
    started = time.monotonic()
    build_sdks(out.resolve(), tuple(args[2:]) or LANGUAGES)
    print(f"SDKs in {out} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
