"""A real Keycloak 26.x, fetched from Maven Central and started on loopback as an interop peer.

Keycloak is the peer that is strictest about metadata (unknown fields are a 400), guards
registration with initial access tokens and per-realm registration policies, and rotates the
registration access token on every update, which is why clientreg tests against it.

Cache layout (``component_dir("keycloak", <version>)``):

``dist/keycloak-<version>/``
    the unpacked ``keycloak-quarkus-dist`` zip, augmented once with ``kc.sh build`` so that every
    start is ``start --optimized`` and skips the ~40 s Quarkus build step;
``seed/``
    an H2 database file in which Keycloak already created its schema and the master realm with a
    known bootstrap admin: copying it into each run saves the Liquibase schema creation and master
    realm bootstrap (measured: 61 → 33-41 CPU-seconds to ready).

Each server runs from its own throwaway home folder whose ``lib``/``themes``/… are symlinks into
the cache: Keycloak writes ``data/`` (database, transaction logs) below its home, and that must not
be shared between two test sessions or leak from one run into the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.cache import build_lock, component_dir, free_port, is_complete, mark_complete, unavailable
from support.peers import PeerServer

# The newest 26.x on Maven Central when this was written. Pinned rather than resolved at run time
# so that the cache key (and the behaviour the tests pin) only changes when someone means it to.
KEYCLOAK_VERSION = os.environ.get("CLIENTREG_KEYCLOAK_VERSION", "26.7.3")
MAVEN_REPO = os.environ.get("CLIENTREG_MAVEN_REPO", "https://repo1.maven.org/maven2").rstrip("/")
MIN_JAVA = 21
# Build-time options, baked into the augmented distribution by `kc.sh build`. `dev-file` so that a
# pre-created database can be copied in (see module docstring).
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true", "--cache=local")
# Given at every start as well: 26.7 accepts --cache at build time but does not persist it, and
# production mode's default (ispn) then opens a JGroups cluster on every interface (:7800, :57800).
RUNTIME_OPTIONS = ("--cache=local",)
# Changing how the seed database is made must invalidate old seeds in caches.
SEED_RECIPE = "1:" + " ".join(RUNTIME_OPTIONS)
# kc.sh's own default outside containers, spelled out so the cap is deliberate: the Go builds that
# share CI's 2 cores need the memory more than an idle test realm does.
HEAP_OPTIONS = os.environ.get("CLIENTREG_KEYCLOAK_HEAP", "-Xms64m -Xmx512m")
# C1 only: a start is mostly JIT work, and on 2 cores the C2 compiler threads cost it about 40% more
# CPU (measured from the seeded database: 23 CPU-s vs 33-41 CPU-s to ready). Tests never run long
# enough for C2 to pay off.
JAVA_EXTRA_OPTIONS = os.environ.get("CLIENTREG_KEYCLOAK_JAVA_OPTS", "-XX:TieredStopAtLevel=1")
# On 2 busy cores a cold start has been seen to take over two minutes.
START_TIMEOUT = float(os.environ.get("CLIENTREG_KEYCLOAK_START_TIMEOUT", "360"))
SEED_ADMIN_USERNAME = "admin"
REGISTRATION_POLICY_TYPE = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"
# The providerId of the "Allowed Client Scopes" registration policy (its old name was templates).
ALLOWED_SCOPES_POLICY = "allowed-client-templates"
_DIST_LINKS = ("lib", "conf", "themes", "providers", "version.txt")


class KeycloakUnavailable(RuntimeError):
    """Keycloak cannot be had on this machine (no JDK 21+, download or build failed)."""


def _unavailable(reason: str) -> None:
    unavailable("Keycloak", reason)




# --------------------------------------------------------------------------------------- JDK


def _java_major(java_home: Path) -> int | None:
    java = java_home / "bin" / "java"
    if not os.access(java, os.X_OK):
        return None
    release = java_home / "release"
    if release.exists():
        # Reading the release file is instant; starting a JVM just to ask its version is not.
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.MULTILINE)
        if m:
            return int(m.group(1))
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def find_jdk() -> Path | None:
    """A JDK home with Java >= 21: ``JAVA_HOME`` if it qualifies, else the newest in /usr/lib/jvm."""
    env_home = os.environ.get("JAVA_HOME")
    if env_home and (_java_major(Path(env_home)) or 0) >= MIN_JAVA:
        return Path(env_home)
    candidates: dict[Path, int] = {}
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        # Debian keeps symlinked aliases (java-1.17.0-openjdk-amd64 → java-17-…, default-java):
        # resolving folds them into one candidate each.
        for home in sorted({entry.resolve() for entry in jvm_root.iterdir()}):
            major = _java_major(home)
            if major is not None and major >= MIN_JAVA:
                candidates[home] = major
    if not candidates:
        return None
    return max(candidates, key=lambda home: (candidates[home], str(home)))


# -------------------------------------------------------------------------- download + build


def _artifact_url(version: str) -> str:
    return f"{MAVEN_REPO}/org/keycloak/keycloak-quarkus-dist/{version}/keycloak-quarkus-dist-{version}.zip"


def _download(url: str, dest: Path) -> None:
    expected = httpx.get(f"{url}.sha1", timeout=60, follow_redirects=True)
    expected.raise_for_status()
    want = expected.text.split()[0].strip().lower()
    part = dest.with_suffix(dest.suffix + ".part")
    digest = hashlib.sha1()
    with httpx.stream("GET", url, timeout=httpx.Timeout(60, read=300), follow_redirects=True) as resp:
        resp.raise_for_status()
        with open(part, "wb") as out:
            for chunk in resp.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    if digest.hexdigest() != want:
        part.unlink(missing_ok=True)
        raise KeycloakUnavailable(f"checksum mismatch for {url}: got {digest.hexdigest()}, want {want}")
    part.replace(dest)


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            # zipfile drops the Unix mode; kc.sh and friends must stay executable.
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)


def _run_logged(cmd: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        subprocess.run(list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True,
                       timeout=timeout)


def _kc_env(jdk: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["JAVA_HOME"] = str(jdk)
    env.pop("JAVA", None)
    # kc.sh would otherwise replace its own JVM defaults with whatever the caller exported.
    env.pop("JAVA_OPTS", None)
    env["JAVA_OPTS_KC_HEAP"] = HEAP_OPTIONS
    env["JAVA_OPTS_APPEND"] = JAVA_EXTRA_OPTIONS
    # Options from a developer's environment (KC_DB, KC_HOSTNAME, …) must not leak in.
    for key in [k for k in env if k.startswith(("KC_", "KEYCLOAK_", "QUARKUS_"))]:
        del env[key]
    env.update(extra or {})
    return env


def ensure_keycloak() -> Path:
    """Return the home folder of a cached, augmented Keycloak distribution, preparing it once.

    Downloads ``org.keycloak:keycloak-quarkus-dist:<version>:zip`` from Maven Central (checked
    against its ``.sha1``), unpacks it and runs ``kc.sh build`` with :data:`BUILD_OPTIONS`. Raises
    :class:`KeycloakUnavailable` without a JDK 21+.
    """
    folder = component_dir("keycloak", KEYCLOAK_VERSION)
    home = folder / "dist" / f"keycloak-{KEYCLOAK_VERSION}"
    built_marker = home / ".clientreg-build-options"
    wanted = " ".join(BUILD_OPTIONS)

    def ready() -> bool:
        return (is_complete(folder) and is_complete(folder / "dist") and built_marker.exists()
                and built_marker.read_text() == wanted)

    if ready():
        return home
    jdk = find_jdk()
    if jdk is None:
        raise KeycloakUnavailable(f"no JDK {MIN_JAVA}+ (set JAVA_HOME or install one under /usr/lib/jvm)")
    with build_lock(folder):
        if ready():
            return home
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "build.log"
        if not is_complete(folder / "dist"):
            archive = folder / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
            if not archive.exists():
                _download(_artifact_url(KEYCLOAK_VERSION), archive)
            shutil.rmtree(folder / "dist", ignore_errors=True)
            staging = folder / "dist.part"
            shutil.rmtree(staging, ignore_errors=True)
            _unzip(archive, staging)
            staging.rename(folder / "dist")
            mark_complete(folder / "dist")
            # 180 MB that CI would otherwise carry in its cache for nothing.
            archive.unlink()
        built_marker.unlink(missing_ok=True)
        (folder / ".complete").unlink(missing_ok=True)
        # The seed database belongs to one build; a rebuild gets a fresh one.
        shutil.rmtree(folder / "seed", ignore_errors=True)
        _run_logged([str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], env=_kc_env(jdk), cwd=home,
                    log=log, timeout=1200)
        built_marker.write_text(wanted)
        mark_complete(folder)
    return home


# ------------------------------------------------------------------------------------ running


def _make_run_home(dist: Path, run_home: Path) -> None:
    (run_home / "bin").mkdir(parents=True)
    # A copy, not a link: kc.sh derives kc.home.dir from its own resolved path.
    shutil.copy2(dist / "bin" / "kc.sh", run_home / "bin" / "kc.sh")
    for name in _DIST_LINKS:
        (run_home / name).symlink_to(dist / name)


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    base_url: str
    management_url: str
    log_path: Path


def _start(dist: Path, jdk: Path, run_home: Path, log_path: Path, env_extra: dict[str, str]) -> _Process:
    port, mgmt_port = free_port(), free_port()
    while mgmt_port == port:
        mgmt_port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [
        str(run_home / "bin" / "kc.sh"),
        "start",
        # Never re-augment at start: that would rewrite lib/ in the shared cache.
        "--optimized",
        "--http-enabled=true",
        "--http-host=127.0.0.1",
        f"--http-port={port}",
        # A full URL pins scheme, host and port, so issuers read http://127.0.0.1:<port>/realms/…
        f"--hostname={base_url}",
        "--http-management-host=127.0.0.1",
        f"--http-management-port={mgmt_port}",
        # Every readiness poll before bootstrap ends would otherwise log a line at INFO.
        "--log-level=info,io.smallrye.health:warn",
        *RUNTIME_OPTIONS,
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=_kc_env(jdk, env_extra),
            cwd=run_home,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: kc.sh runs java as a child, and both must go on exit.
            start_new_session=True,
        )
    return _Process(proc, base_url, f"http://127.0.0.1:{mgmt_port}", log_path)


def _wait_ready(p: _Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    url = f"{p.management_url}/health/ready"
    while True:
        if p.proc.poll() is not None:
            raise KeycloakUnavailable(f"Keycloak exited with {p.proc.returncode}; see {p.log_path}")
        if time.monotonic() > deadline:
            raise KeycloakUnavailable(f"Keycloak not ready after {START_TIMEOUT:.0f}s; see {p.log_path}")
        try:
            if httpx.get(url, timeout=5.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(p: _Process) -> None:
    # The group id is kc.sh's pid (start_new_session); java runs in the same group.
    pgid = p.proc.pid
    with contextlib.suppress(ProcessLookupError):
        # kc.sh forwards TERM to java, which shuts down gracefully and closes the H2 file. While
        # still bootstrapping, Keycloak has been seen to sit on TERM for over 20 s: hence the wait.
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (p.proc.poll() is None or _group_alive(pgid)):
        time.sleep(0.2)
    if p.proc.poll() is None or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    p.proc.wait()


def _seed_dir() -> Path:
    return component_dir("keycloak", KEYCLOAK_VERSION) / "seed"


def ensure_seed(dist: Path, jdk: Path) -> tuple[Path, dict[str, str]]:
    """An H2 database with Keycloak's schema and master realm already created, made once per build.

    Returns the folder holding the database files and the bootstrap admin credentials baked in.
    """
    folder = component_dir("keycloak", KEYCLOAK_VERSION)
    seed = _seed_dir()
    creds_file = seed / "admin.json"

    def usable() -> dict[str, str] | None:
        if not (is_complete(seed) and creds_file.exists()):
            return None
        saved: dict[str, str] = json.loads(creds_file.read_text())
        return saved if saved.get("recipe") == SEED_RECIPE else None

    if (saved := usable()) is not None:
        return seed, saved
    with build_lock(folder):
        if (saved := usable()) is not None:
            return seed, saved
        shutil.rmtree(seed, ignore_errors=True)
        # Loopback only and thrown away with the cache, but still not a guessable password.
        creds = {
            "username": SEED_ADMIN_USERNAME,
            "password": hashlib.sha256(os.urandom(32)).hexdigest()[:24],
            "recipe": SEED_RECIPE,
        }
        with tempfile.TemporaryDirectory(prefix="clientreg-keycloak-seed-") as tmp:
            run_home = Path(tmp) / "home"
            _make_run_home(dist, run_home)
            p = _start(dist, jdk, run_home, folder / "seed.log", {
                "KC_BOOTSTRAP_ADMIN_USERNAME": creds["username"],
                "KC_BOOTSTRAP_ADMIN_PASSWORD": creds["password"],
            })
            try:
                _wait_ready(p)
            finally:
                _stop(p)
            if p.proc.returncode not in (0, 143):
                raise KeycloakUnavailable(f"seed run exited with {p.proc.returncode}; see {p.log_path}")
            staging = folder / "seed.part"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            # Only the database: the .trace.db beside it holds Liquibase's expected first-run errors.
            for db_file in (run_home / "data" / "h2").glob("*.mv.db"):
                shutil.copy2(db_file, staging / db_file.name)
        (staging / "admin.json").write_text(json.dumps(creds))
        staging.rename(seed)
        mark_complete(seed)
    return seed, creds


@dataclass
class KeycloakServer:
    """A running Keycloak with an admin session on the master realm."""

    base_url: str
    management_url: str
    admin_username: str
    admin_password: str
    log_path: Path
    version: str = KEYCLOAK_VERSION
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0), repr=False)

    # -- admin REST API ---------------------------------------------------------------------

    def admin_token(self) -> str:
        """A fresh admin access token (master realm tokens live 60 s, so none is kept)."""
        resp = self.http.post(
            f"{self.base_url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.admin_username,
                "password": self.admin_password,
            },
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call ``<base>/admin/realms<path>`` as the admin; raises on any non-2xx answer."""
        headers = {"Authorization": f"Bearer {self.admin_token()}", **kwargs.pop("headers", {})}
        resp = self.http.request(method, f"{self.base_url}/admin/realms{path}", headers=headers, **kwargs)
        if resp.is_error:
            raise RuntimeError(f"Keycloak admin {method} {path} → {resp.status_code}: {resp.text[:500]}")
        return resp

    def create_realm(self, name: str) -> PeerServer:
        """Create an enabled realm and hand it back as a peer with a fresh initial access token."""
        self.admin("POST", "", json={"realm": name, "enabled": True})
        issuer = f"{self.base_url}/realms/{name}"
        meta = self.http.get(f"{issuer}/.well-known/openid-configuration")
        meta.raise_for_status()
        doc = meta.json()
        return PeerServer(
            name="keycloak",
            issuer=issuer,
            registration_endpoint=doc["registration_endpoint"],
            token_endpoint=doc["token_endpoint"],
            initial_access_token=self.initial_access_token(name),
            log_path=self.log_path,
            extra={
                "realm": name,
                "base_url": self.base_url,
                "admin_url": f"{self.base_url}/admin/realms/{name}",
                "version": self.version,
                "server": self,
            },
        )

    def initial_access_token(self, realm: str, count: int = 100, expiration: int = 3600) -> str:
        """A new initial access token good for ``count`` registrations within ``expiration`` s."""
        resp = self.admin("POST", f"/{realm}/clients-initial-access",
                          json={"count": count, "expiration": expiration})
        return str(resp.json()["token"])

    def create_client_scope(self, realm: str, name: str, *, realm_optional: bool = True) -> str:
        """Create an OIDC client scope; returns its id.

        With ``realm_optional`` it also becomes a realm "optional" scope: the default Allowed
        Client Scopes policy only lets registrations ask for realm default/optional scopes.
        """
        resp = self.admin("POST", f"/{realm}/client-scopes", json={
            "name": name,
            "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"},
        })
        scope_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        if realm_optional:
            self.admin("PUT", f"/{realm}/default-optional-client-scopes/{scope_id}")
        return scope_id

    def registration_policies(self, realm: str) -> list[dict[str, Any]]:
        """The realm's client registration policies (components; ``subType`` anonymous/authenticated)."""
        resp = self.admin("GET", f"/{realm}/components", params={"type": REGISTRATION_POLICY_TYPE})
        return list(resp.json())

    def set_allowed_client_scopes(
        self,
        realm: str,
        scopes: Sequence[str],
        *,
        allow_default_scopes: bool = True,
        subtypes: Sequence[str] = ("anonymous", "authenticated"),
    ) -> None:
        """Edit the "Allowed Client Scopes" registration policy: a registration asking for any
        other scope is then refused with 403 ``insufficient_scope``.

        Registrations made with an initial access token are governed by the ``authenticated``
        policies (their registration access token says ``registration_auth: authenticated``); the
        ``anonymous`` ones only see token-less requests. ``allow_default_scopes`` keeps the realm's
        default and optional scopes allowed as well; leave it on: every new client is given the
        realm default scope ``basic``, so without it every registration is refused.
        """
        found = False
        for comp in self.registration_policies(realm):
            if comp.get("providerId") != ALLOWED_SCOPES_POLICY or comp.get("subType") not in subtypes:
                continue
            found = True
            comp.setdefault("config", {})
            comp["config"]["allowed-client-scopes"] = list(scopes)
            comp["config"]["allow-default-scopes"] = ["true" if allow_default_scopes else "false"]
            self.admin("PUT", f"/{realm}/components/{comp['id']}", json=comp)
        if not found:
            raise RuntimeError(f"realm {realm} has no {ALLOWED_SCOPES_POLICY} registration policy")


@contextlib.contextmanager
def running_keycloak() -> Iterator[KeycloakServer]:
    """Start Keycloak (``start --optimized``, HTTP on a free 127.0.0.1 port) and stop it on exit.

    Skips (fails in CI) when no JDK 21+ is found or Keycloak cannot be prepared. The log is kept
    after exit so a failing test can point at it.
    """
    jdk = find_jdk()
    if jdk is None:
        _unavailable(f"no JDK {MIN_JAVA}+ found (JAVA_HOME or /usr/lib/jvm/*)")
        raise AssertionError("unreachable")
    try:
        dist = ensure_keycloak()
        seed, creds = ensure_seed(dist, jdk)
    except (KeycloakUnavailable, httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
        log = component_dir("keycloak", KEYCLOAK_VERSION) / "build.log"
        _unavailable(f"{exc} (see {log})")
        raise AssertionError("unreachable") from exc
    fd, log_name = tempfile.mkstemp(prefix="clientreg-keycloak-", suffix=".log")
    os.close(fd)
    log_path = Path(log_name)
    with tempfile.TemporaryDirectory(prefix="clientreg-keycloak-") as tmp:
        run_home = Path(tmp) / "home"
        _make_run_home(dist, run_home)
        (run_home / "data" / "h2").mkdir(parents=True)
        for db_file in seed.glob("*.mv.db"):
            shutil.copy2(db_file, run_home / "data" / "h2" / db_file.name)
        # Ignored while the master realm exists (it does, in the seed), but set so that a
        # missing seed file would still end with the same admin instead of none.
        p = _start(dist, jdk, run_home, log_path, {
            "KC_BOOTSTRAP_ADMIN_USERNAME": creds["username"],
            "KC_BOOTSTRAP_ADMIN_PASSWORD": creds["password"],
        })
        server: KeycloakServer | None = None
        try:
            _wait_ready(p)
            server = KeycloakServer(
                base_url=p.base_url,
                management_url=p.management_url,
                admin_username=creds["username"],
                admin_password=creds["password"],
                log_path=log_path,
            )
            yield server
        finally:
            if server is not None:
                server.http.close()
            _stop(p)
