"""The clientreg provider plugin driven by the real engine from project folders, as users run programs.

Each example (``examples/pulumi-yaml``; ``examples/pulumi-typescript`` and ``examples/pulumi-python-plugin``
with the SDKs generated from schema.json) is
copied into a folder and run with the Pulumi CLI 3.274.1, its language host and ``pulumi-resource-clientreg``
on PATH, a local file backend and a passphrase: up → refresh after drift at the AS → up (heals) → rotate →
``pulumi import`` of a client registered elsewhere → destroy, against the dev AS. The state file must hold no
plaintext secret at any point. The examples declare the same clients and outputs, so one scenario runs both.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from support.cache import go_env, unavailable
from support.elsewhere import register_elsewhere
from support.pulumi_engine import CLI_VERSION, SDK_MODULE
from support.pulumi_hosts import (
    HostUnavailable,
    ensure_node_modules,
    ensure_nodejs_host,
    ensure_yaml_host,
    project_env,
)
from support.pulumi_project import SECRET_SIG, ProjectRun, plain
from support.pulumi_sdks import SdkUnavailable, build_sdks

from clientreg import rfc7592
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RESOURCE = "clientreg:index:OAuthClient"


@pytest.fixture(scope="module")
def yaml_host(pulumi_bin: Path) -> Path:
    try:
        return ensure_yaml_host()
    except HostUnavailable as exc:
        unavailable("the Pulumi YAML language host", str(exc))


@pytest.fixture(scope="module")
def nodejs_sdk(pulumi_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Node.js SDK generated from schema.json and compiled, as scripts/build-pulumi-sdks makes it."""
    try:
        return build_sdks(tmp_path_factory.mktemp("sdk"), ("nodejs",)) / "nodejs" / "bin"
    except (HostUnavailable, SdkUnavailable) as exc:
        unavailable("the Node.js SDK", str(exc))


@pytest.fixture(scope="module")
def python_venv(pulumi_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the Python SDK (pulumi_clientreg, generated from schema.json) pip-installed, and
    this interpreter's packages (pulumi, clientreg's dependencies) visible through a .pth file."""
    try:
        sdk = build_sdks(tmp_path_factory.mktemp("sdk"), ("python",)) / "python"
    except (HostUnavailable, SdkUnavailable) as exc:
        unavailable("the Python SDK", str(exc))
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "clientreg-test.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    # Built in isolation (setuptools and wheel from PyPI), as `pip install sdk/python` does for a user.
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(sdk)],
                   check=True)
    return venv


def python_host(pulumi_bin: Path) -> Path:
    """The folder holding pulumi-language-python: next to the test CLI (support.pulumi_engine), or on PATH."""
    found = shutil.which("pulumi-language-python", path=os.pathsep.join([str(pulumi_bin),
                                                                          os.environ.get("PATH", "")]))
    if found is None:
        raise HostUnavailable("pulumi-language-python is neither next to the test CLI nor on PATH")
    return Path(found).parent


@pytest.fixture(params=["yaml", "typescript", "python"])
def program(request: pytest.FixtureRequest, tmp_path: Path, pulumi_bin: Path) -> ProjectRun:
    """A copy of the language's example in a project folder, run in the environment of its language host."""
    folder = tmp_path / "project"
    example = {"yaml": "pulumi-yaml", "typescript": "pulumi-typescript", "python": "pulumi-python-plugin"}
    shutil.copytree(EXAMPLES / example[request.param], folder)
    try:
        if request.param == "yaml":
            return ProjectRun(folder, tmp_path, base_env=project_env(tmp_path, ensure_yaml_host()))
        if request.param == "python":
            env = project_env(tmp_path, python_host(pulumi_bin))
            # The virtualenv Pulumi.yaml names: the SDK pip-installed, pulumi beside it.
            (folder / "venv").symlink_to(request.getfixturevalue("python_venv"), target_is_directory=True)
            return ProjectRun(folder, tmp_path, base_env=env)
        sdk = request.getfixturevalue("nodejs_sdk")
        modules = ensure_node_modules()
        # What `npm install` would lay out: @pulumi/pulumi and typescript from npm, the SDK from its folder.
        (folder / "node_modules" / "@clientreg").mkdir(parents=True)
        for name in ("@pulumi", "@types", "typescript"):
            (folder / "node_modules" / name).symlink_to(modules / name, target_is_directory=True)
        (folder / "node_modules" / "@clientreg" / "pulumi").symlink_to(sdk, target_is_directory=True)
        return ProjectRun(folder, tmp_path, base_env=project_env(tmp_path, ensure_nodejs_host()))
    except HostUnavailable as exc:
        unavailable(f"the Pulumi {request.param} language host", str(exc))


@pytest.fixture(scope="module")
def http() -> Iterator[HttpClient]:
    client = HttpClient()
    yield client
    client.close()


def at_dev(server: DevServer) -> set[str]:
    return set(httpx.get(f"{server.dev_url}/clients", timeout=10).json())


def test_program_lifecycle_through_the_plugin(program: ProjectRun, http: HttpClient) -> None:
    iat = secrets.token_urlsafe(18)
    run = program
    with DevServer(DevServerSettings(initial_access_token=iat, rotate_registration_access_token=False)) as server:
        run("stack", "init", "dev", with_stack=False)
        run("config", "set", "clientreg:issuer", server.issuer)
        run("config", "set", "--secret", "--", "clientreg:initialAccessToken", iat)

        # --- up: two clients, the provider's defaults, secrets secret
        run("up", "--yes")
        out = run.outputs()
        web_id, worker_id = out["webClientId"], out["workerClientId"]
        assert {web_id, worker_id} <= at_dev(server)
        assert out["webStatus"] == "InSync" and out["webRegisteredName"] == "Web"  # getClient, through RFC 7592
        state = run.resources(RESOURCE)
        for secret_output in ("clientSecret", "registrationAccessToken", "record"):
            assert SECRET_SIG in state["web"]["outputs"][secret_output]
        assert SECRET_SIG in state["web"]["inputs"]["initialAccessToken"]  # the provider default, kept encrypted
        web_state = run.resources(RESOURCE, show_secrets=True)["web"]["outputs"]
        uri, rat = web_state["registrationClientUri"], SecretStr(plain(web_state["registrationAccessToken"]))
        seen = [iat, out["webClientSecret"], out["workerClientSecret"], rat.get_secret_value()]

        # --- drift at the AS: refresh shows it property by property, up puts it back
        current = rfc7592.read(http, uri, rat).metadata
        rfc7592.update(http, uri, rat, web_id, {**current, "client_name": "Renamed at the AS"})
        run("refresh", "--yes")
        web = run.resources(RESOURCE)["web"]["outputs"]
        assert web["status"] == "DriftAtServer" and web["clientName"] == "Renamed at the AS"
        preview = run("preview", "--diff").stdout
        assert "clientName" in preview and "Renamed at the AS" in preview, preview
        run("up", "--yes")
        assert rfc7592.read(http, uri, rat).metadata["client_name"] == "Web"
        assert run.outputs()["webStatus"] == "InSync"

        # --- rotation: a new trigger registers a successor and keeps the old client for its grace period
        run("config", "set", "rotation", "2")
        run("up", "--yes")
        rotated = run.outputs()
        assert rotated["workerClientId"] != worker_id and rotated["workerRetiringClientIds"] == [worker_id]
        assert {worker_id, rotated["workerClientId"]} <= at_dev(server)
        seen.append(rotated["workerClientSecret"])

        # --- pulumi import of a client registered elsewhere, its registration access token a secret
        elsewhere = register_elsewhere(server.registration_endpoint, iat, {
            "client_name": "Legacy batch", "grant_types": ["client_credentials"], "response_types": []})
        legacy_rat = elsewhere.registration_access_token.get_secret_value()
        without_token = run("import", RESOURCE, "legacy", elsewhere.client_id, "--yes", "--generate-code=false",
                            check=False)
        assert without_token.returncode != 0
        said = without_token.stdout + without_token.stderr
        assert "registration access token" in said and "CLIENTREG_IMPORT_REGISTRATION_ACCESS_TOKEN" in said
        assert "Traceback" not in said
        # The token reaches the plugin through the environment of this one command, stored nowhere else.
        importing = {"CLIENTREG_IMPORT_REGISTRATION_ACCESS_TOKEN": legacy_rat,
                     "CLIENTREG_IMPORT_REGISTRATION_CLIENT_URI": elsewhere.registration_client_uri}
        run("import", RESOURCE, "legacy", elsewhere.client_id, "--yes", "--generate-code=false", "--protect=false",
            extra_env=importing)
        legacy = run.resources(RESOURCE)["legacy"]
        assert legacy["id"] == elsewhere.client_id
        assert legacy["inputs"]["clientName"] == "Legacy batch"
        assert SECRET_SIG in legacy["outputs"]["registrationAccessToken"]
        seen.append(legacy_rat)

        assert not [s for s in seen if s in run.state_text()], "a secret is in the state in plaintext"

        # --- destroy: every client of the stack leaves the AS, the retiring one and the imported one too
        run("destroy", "--yes")
        assert not {web_id, worker_id, rotated["workerClientId"], elsewhere.client_id} & at_dev(server)
        assert not [s for s in seen if s in run.state_text()]


def test_yaml_program_errors_name_the_argument(yaml_host: Path, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text(
        "name: clientreg-bad\nruntime: yaml\nresources:\n  bad:\n    type: clientreg:index:OAuthClient\n"
        "    properties:\n      issuer: ftp://auth.example.com\n      redirectUris: [not a url]\n"
        "      tokenEndpointAuthMethod: private_key_jwt\n")
    run = ProjectRun(folder, tmp_path, base_env=project_env(tmp_path, yaml_host))
    run("stack", "init", "dev", with_stack=False)
    result = run("preview", check=False)
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert "issuer" in said and "redirectUris" in said, said
    assert "spec." not in said and "redirect_uris" not in said and "Traceback" not in said, said


def test_plugin_folder_runs_through_the_python_language_host(pulumi_bin: Path, nodejs_sdk: Path, tmp_path: Path,
                                                             http: HttpClient) -> None:
    """provider/pulumi-plugin (PulumiPlugin.yaml, runtime: python) named in a program's Pulumi.yaml, with no
    pulumi-resource-clientreg on PATH: the CLI runs the plugin's __main__.py through pulumi-language-python."""
    try:
        hosts = (python_host(pulumi_bin), ensure_nodejs_host())
        modules = ensure_node_modules()
    except HostUnavailable as exc:
        unavailable("the Python and Node.js language hosts", str(exc))
    plugin = tmp_path / "pulumi-plugin"
    shutil.copytree(EXAMPLES.parent / "provider" / "pulumi-plugin", plugin)
    (plugin / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)  # its default virtualenv
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLES / "pulumi-typescript", folder)
    with open(folder / "Pulumi.yaml", "a") as project:
        project.write(f"plugins:\n  providers:\n    - name: clientreg\n      path: {plugin}\n")
    (folder / "node_modules" / "@clientreg").mkdir(parents=True)
    for name in ("@pulumi", "@types", "typescript"):
        (folder / "node_modules" / name).symlink_to(modules / name, target_is_directory=True)
    (folder / "node_modules" / "@clientreg" / "pulumi").symlink_to(nodejs_sdk, target_is_directory=True)
    run = ProjectRun(folder, tmp_path, base_env=project_env(tmp_path, *hosts, plugin_on_path=False))
    with DevServer(DevServerSettings()) as server:
        run("stack", "init", "dev", with_stack=False)
        run("config", "set", "clientreg:issuer", server.issuer)
        run("up", "--yes")
        out = run.outputs()
        assert out["webStatus"] == "InSync" and out["webClientId"] in at_dev(server)
        run("destroy", "--yes")
        assert out["webClientId"] not in at_dev(server)
        assert out["webClientSecret"] not in run.state_text()


GO_PROGRAM = """package main

import (
\t"example.com/clientreg/sdk/go/clientreg"
\t"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func main() {
\tpulumi.Run(func(ctx *pulumi.Context) error {
\t\tweb, err := clientreg.NewOAuthClient(ctx, "web", &clientreg.OAuthClientArgs{
\t\t\tClientName:   pulumi.String("Web"),
\t\t\tRedirectUris: pulumi.StringArray{pulumi.String("https://app.example.com/cb")},
\t\t})
\t\tif err != nil {
\t\t\treturn err
\t\t}
\t\tctx.Export("clientSecret", web.ClientSecret)
\t\treturn nil
\t})
}
"""


def test_go_sdk_builds_into_a_program(pulumi_bin: Path, tmp_path: Path) -> None:
    """Go programs cannot run here (the Go language host's module is refused by the proxy), so the Go SDK
    generated from schema.json is compiled into a program that declares a client and exports its secret."""
    if shutil.which("go") is None:
        unavailable("the Go SDK", "go not on PATH")
    try:
        sdk = build_sdks(tmp_path / "sdk", ("go",)) / "go"
    except SdkUnavailable as exc:
        unavailable("the Go SDK", str(exc))
    (sdk / "go.mod").write_text(f"module example.com/clientreg/sdk/go\n\ngo 1.24\n\n"
                                f"require {SDK_MODULE} v{CLI_VERSION}\n")
    program = sdk / "cmd" / "example"
    program.mkdir(parents=True)
    (program / "main.go").write_text(GO_PROGRAM)
    for cmd in (["go", "mod", "tidy"], ["go", "build", "-o", str(tmp_path / "example"), "./cmd/example"]):
        result = subprocess.run(cmd, cwd=sdk, env=go_env(), capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "example").is_file()
