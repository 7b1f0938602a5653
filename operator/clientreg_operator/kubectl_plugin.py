"""``kubectl clientreg``: rotate OAuthClients and show their state, with ``cmctl``'s verbs and kubectl's flags.

Installed as ``kubectl-clientreg`` (``pip install 'clientreg[operator]'``), so kubectl finds it as a plugin;
``clientreg-operator rotate``/``status`` are the same commands. Rotation is what ``cmctl renew`` does for a
Certificate: set an annotation (``clientreg.dev/rotate``) to a new value; the operator does the rest.

Names are checked as DNS-1123 names before they reach an API path, and what the API server answers is
printed with control characters escaped. Nothing here reads a Secret.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from clientreg.errors import ConfigurationError
from clientreg.names import check_dns1123_label, check_dns1123_subdomain
from clientreg_kube.conventions import API_VERSION, MERGE_PATCH, OAUTHCLIENTS, ROTATE_ANNOTATION

from .inspect import printable, render

Body = dict[str, Any]
#: The subcommands (and aliases) this module adds to a parser.
COMMANDS = ("rotate", "status", "inspect")


class NotFound(Exception):
    """The API server answered 404 for an OAuthClient."""


class ApiFailed(Exception):
    """Any other refusal: the message says what was asked and the HTTP status."""


class Api(Protocol):
    """What the commands need from the API server (a fake in unit tests, :class:`KubeApi` for real)."""

    def get(self, namespace: str, name: str) -> Body: ...
    def list_clients(self, namespace: str | None, selector: str | None) -> list[Body]: ...
    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None: ...
    def events(self, namespace: str, name: str) -> list[Body]: ...


class KubeApi:
    """:class:`Api` over the official client (kubeconfig, ``$KUBECONFIG``, or the Pod's service account)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.group, self.version = API_VERSION.split("/")

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(what) from None
            raise ApiFailed(f"cannot {what}: HTTP {exc.status} {exc.reason}") from None

    def get(self, namespace: str, name: str) -> Body:
        return dict(self._call(f"get OAuthClient {namespace}/{name}", lambda: self.custom.get_namespaced_custom_object(
            self.group, self.version, namespace, OAUTHCLIENTS, name)))

    def list_clients(self, namespace: str | None, selector: str | None) -> list[Body]:
        where = f"namespace {namespace}" if namespace else "all namespaces"
        if namespace is None:
            listed = self._call(f"list OAuthClients in {where}", lambda: self.custom.list_cluster_custom_object(
                self.group, self.version, OAUTHCLIENTS, label_selector=selector or ""))
        else:
            listed = self._call(f"list OAuthClients in {where}", lambda: self.custom.list_namespaced_custom_object(
                self.group, self.version, namespace, OAUTHCLIENTS, label_selector=selector or ""))
        return list(listed.get("items") or [])

    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self._call(f"annotate OAuthClient {namespace}/{name}", lambda: self.custom.patch_namespaced_custom_object(
            self.group, self.version, namespace, OAUTHCLIENTS, name, {"metadata": {"annotations": annotations}},
            _content_type=MERGE_PATCH))

    def events(self, namespace: str, name: str) -> list[Body]:
        selector = f"involvedObject.kind=OAuthClient,involvedObject.name={name}"
        response = self._call(f"list the events of OAuthClient {namespace}/{name}",
                              lambda: self.core.list_namespaced_event(namespace, field_selector=selector,
                                                                      _preload_content=False))
        return list(json.loads(response.data).get("items") or [])


def connect(kubeconfig: str | None, context: str | None) -> tuple[Api, str]:
    """The API and the namespace kubectl would use: the context's namespace, else ``default`` (in a Pod: its own)."""
    from kubernetes import client, config

    try:
        config.load_kube_config(config_file=kubeconfig, context=context)
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c.get("name") == context), active)
        namespace = str((active or {}).get("context", {}).get("namespace") or "default")
    except config.ConfigException:
        if kubeconfig or context:
            raise
        config.load_incluster_config()
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                namespace = f.read().strip() or "default"
        except OSError:
            namespace = "default"
    return KubeApi(client.ApiClient()), namespace


def _split(target: str, namespace: str) -> tuple[str, str]:
    """``[NAMESPACE/]NAME`` as (namespace, name), both checked (they become API path segments)."""
    ns, _, name = target.rpartition("/")
    ns = check_dns1123_label(ns or namespace, field="namespace")
    return ns, check_dns1123_subdomain(name, field="name")


def _name(body: Body) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def rotate(api: Api, args: argparse.Namespace, namespace: str, out: TextIO, err: TextIO) -> int:
    """Set the rotate annotation on every OAuthClient named or selected; 1 when any was missing or refused."""
    if args.targets and (args.all or args.selector):
        print("name OAuthClients, or select them with --all / -l, not both", file=err)
        return 2
    if not args.targets and not (args.all or args.selector):
        print("say which OAuthClients to rotate: NAME..., --all or -l SELECTOR", file=err)
        return 2
    if args.all_namespaces and args.targets:
        print("-A/--all-namespaces selects clients: use it with --all or -l, not with names", file=err)
        return 2
    request = args.request or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.targets:
        targets = [_split(t, namespace) for t in args.targets]
    else:
        scope = None if args.all_namespaces else namespace
        targets = [_name(b) for b in api.list_clients(scope, args.selector)]
        if not targets:
            where = "any namespace" if scope is None else f"namespace {scope}"
            matching = f" matching {args.selector!r}" if args.selector else ""
            print(f"no OAuthClients{matching} found in {where}", file=err)
            return 0
    failed = 0
    for ns, name in targets:
        try:
            api.annotate(ns, name, {ROTATE_ANNOTATION: request})
        except NotFound:
            print(f"OAuthClient {ns}/{name} not found", file=err)
            failed += 1
            continue
        except ApiFailed as exc:
            print(printable(exc), file=err)
            failed += 1
            continue
        print(f"rotation of OAuthClient {ns}/{name} requested ({ROTATE_ANNOTATION}={request})", file=out)
    if len(targets) == 1 and not failed:
        ns, name = targets[0]
        print(f"watch it with: kubectl get oauthclient -n {ns} {name} -w", file=out)
    return 1 if failed else 0


def status(api: Api, args: argparse.Namespace, namespace: str, out: TextIO, err: TextIO) -> int:
    ns, name = _split(args.target, namespace)
    try:
        body = api.get(ns, name)
    except NotFound:
        print(f"OAuthClient {ns}/{name} not found", file=err)
        return 1
    try:
        events = api.events(ns, name)
    except ApiFailed as exc:  # RBAC may allow OAuthClients and not Events: show the rest
        print(printable(exc), file=err)
        events = []
    out.write(render(body, events, limit=args.events))
    return 0


def add_commands(sub: Any) -> None:
    """Add ``rotate`` and ``status`` (alias ``inspect``) to a subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--namespace", "-n", default=None, help="default: the current context's namespace")
    common.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, else ~/.kube/config, else in-cluster")
    common.add_argument("--context", default=None, help="the kubeconfig context to use (default: the current one)")

    rotate_ = sub.add_parser("rotate", parents=[common], help="rotate OAuthClients' credentials now (like cmctl renew)",
                             description="Mark OAuthClients for rotation: the operator registers a replacement "
                                         "client (or key) and retires the old one after the grace period.")
    rotate_.add_argument("targets", nargs="*", metavar="[NAMESPACE/]NAME")
    rotate_.add_argument("--all", action="store_true", help="every OAuthClient of the namespace (or of all, with -A)")
    rotate_.add_argument("--selector", "-l", default=None, help="OAuthClients matching this label selector")
    rotate_.add_argument("--all-namespaces", "-A", action="store_true", help="with --all or -l: in every namespace")
    rotate_.add_argument("--request", default=None, help="annotation value (default: the current time)")
    rotate_.set_defaults(handler=rotate)

    status_ = sub.add_parser("status", aliases=["inspect"], parents=[common],
                             help="show an OAuthClient: conditions, client ID, Secret, rotation, last events")
    status_.add_argument("target", metavar="[NAMESPACE/]NAME")
    status_.add_argument("--events", type=int, default=10, help="how many of the last events to show (default 10)")
    status_.set_defaults(handler=status)


def run_command(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None,
                api: Api | None = None) -> int:
    """Run a parsed ``rotate``/``status``: clear messages and exit codes, never a traceback."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        namespace = args.namespace
        if api is None:
            api, context_namespace = connect(args.kubeconfig, args.context)
            namespace = namespace or context_namespace
        handler: Callable[[Api, argparse.Namespace, str, TextIO, TextIO], int] = args.handler
        return handler(api, args, namespace or "default", out, err)
    except ConfigurationError as exc:
        print(printable(exc), file=err)
        return 2
    except (NotFound, ApiFailed) as exc:
        print(printable(exc), file=err)
        return 1
    except Exception as exc:  # kubeconfig unreadable, API server unreachable: said in one line
        print(f"{type(exc).__name__}: {printable(exc)}", file=err)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl clientreg", description=__doc__.split("\n\n")[0])
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        import kubernetes  # noqa: F401
    except ImportError:  # pragma: no cover - the extra is missing
        print("kubectl clientreg needs the operator extra: pip install 'clientreg[operator]'", file=sys.stderr)
        return 1
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
