"""``clientreg-operator``: run the operator, rotate clients and show their state, print the CRDs."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from clientreg.ssrf import AddressPolicy

from . import kubectl_plugin
from .config import OperatorConfig, ServerAddressPolicies, parse_interval
from .documents import HostBinding

#: A namespace name: an RFC 1123 label.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _crds(args: argparse.Namespace) -> int:
    from . import crds

    files = crds.files()
    if args.output_dir:
        folder = Path(args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        print(f"wrote {len(files)} CRDs to {folder}", file=sys.stderr)
    else:
        sys.stdout.write("---\n".join(files.values()))
    return 0


def _run(args: argparse.Namespace) -> int:
    from .runner import run

    namespaces = tuple(n for item in args.namespace for n in item.split(",") if n)
    if args.all_namespaces and namespaces:
        print("--all-namespaces and --namespace exclude each other", file=sys.stderr)
        return 2
    if not args.all_namespaces and not namespaces:
        print("say which namespaces to serve: --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    records_namespace = args.records_namespace or args.cluster_resource_namespace
    if not _NAMESPACE.fullmatch(records_namespace):
        print(f"--records-namespace {records_namespace!r} is not a namespace name (RFC 1123 label: lowercase "
              "letters, digits and '-', at most 63 characters)", file=sys.stderr)
        return 2
    cfg = OperatorConfig(
        namespaces=namespaces,
        cluster_resource_namespace=args.cluster_resource_namespace,
        records_namespace=records_namespace,
        drift_check_interval=parse_interval(args.drift_check_interval),
        label_selector=args.label_selector or None,
        leader_election=args.leader_election,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace or args.cluster_resource_namespace,
        identity=args.identity or os.environ.get("POD_NAME") or os.uname().nodename,
        lease_duration=parse_interval(args.lease_duration),
        metrics_address=args.metrics_address or None,
        probe_address=args.probe_address or None,
        restart_deployments=args.restart_deployments,
        watch_credentials=args.watch_credentials,
        log_format=args.log_format,
        log_level=args.log_level,
        kubeconfig=args.kubeconfig,
        address_policies=ServerAddressPolicies(
            cluster=AddressPolicy(allow_loopback=args.allow_loopback_servers, allow_private=args.allow_private_servers),
            namespaced=AddressPolicy(allow_loopback=args.allow_loopback_servers,
                                     allow_private=args.allow_private_namespaced_servers)),
        document_hosts=tuple(args.document_host),
        document_sync_interval=parse_interval(args.document_sync_interval),
    )
    return run(cfg)


def _host_binding(text: str) -> HostBinding:
    try:
        return HostBinding.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="clientreg-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--namespace", "-n", action="append", default=[],
                     help="serve OAuthClients and AuthorizationServers of this namespace (repeatable, or "
                          "comma-separated)")
    run.add_argument("--all-namespaces", "-A", action="store_true", help="serve every namespace")
    run.add_argument("--cluster-resource-namespace", default=env("CLIENTREG_CLUSTER_RESOURCE_NAMESPACE", "clientreg"),
                     help="where ClusterAuthorizationServer Secrets are read from (default: clientreg)")
    run.add_argument("--records-namespace", default=env("POD_NAMESPACE", ""),
                     help="where record Secrets (they hold registration access tokens) are kept: the operator's own "
                          "namespace, which tenants cannot read (default: $POD_NAMESPACE, else the cluster resource "
                          "namespace)")
    run.add_argument("--drift-check-interval", default="10m",
                     help="how often a stable client is checked against its AS (Go duration, default 10m)")
    run.add_argument("--label-selector", default="",
                     help="serve only OAuthClients matching this label selector (sharding across deployments)")
    run.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=True,
                     help="run only while holding the Lease (several replicas, one active; default on)")
    run.add_argument("--lease-name", default="clientreg-operator")
    run.add_argument("--lease-namespace", default=env("POD_NAMESPACE", ""),
                     help="namespace of the Lease (default: $POD_NAMESPACE, else the cluster resource namespace)")
    run.add_argument("--lease-duration", default="15s", help="how long a silent leader keeps the Lease")
    run.add_argument("--identity", default="", help="this replica's name in the Lease (default: $POD_NAME)")
    run.add_argument("--metrics-address", default="", help="HOST:PORT for /metrics (default: off)")
    run.add_argument("--probe-address", default="", help="HOST:PORT for /healthz and /readyz (default: off)")
    run.add_argument("--restart-deployments", action="store_true",
                     help=f"after a rotation, restart Deployments annotated {'clientreg.dev/restart-on-rotation'}")
    run.add_argument("--watch-credentials", action=argparse.BooleanOptionalAction, default=True,
                     help="watch the credentials Secrets the operator writes and restore an edited or deleted one "
                          "at once (default on; needs list/watch on Secrets in every served namespace). Off: "
                          "restored at the next drift check, and no list/watch on Secrets is needed")
    run.add_argument("--log-format", choices=("json", "text"), default="json")
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--kubeconfig", default=None, help="default: in-cluster config, else $KUBECONFIG")
    run.add_argument("--allow-private-servers", action=argparse.BooleanOptionalAction, default=True,
                     help="let ClusterAuthorizationServers resolve to private addresses (10/8, 172.16/12, "
                          "192.168/16, 100.64/10, fc00::/7), as in-cluster servers do (default on). Link-local and "
                          "cloud metadata addresses are always refused")
    run.add_argument("--allow-private-namespaced-servers", action=argparse.BooleanOptionalAction, default=False,
                     help="let namespaced AuthorizationServers, which tenants write, resolve to private addresses "
                          "too (default off: public addresses only, so a tenant cannot point the operator at "
                          "in-cluster services)")
    run.add_argument("--allow-loopback-servers", action="store_true",
                     help="TESTING ONLY: let authorization servers of both kinds resolve to loopback addresses (an "
                          "operator run as a local process against a local AS)")
    run.add_argument("--document-host", action="append", default=[], type=_host_binding,
                     metavar="NAMESPACE=PATTERN",
                     help="serve published documents (CIMD, JWKS) at hosts matching PATTERN ('*.example.com' or "
                          "a host) only to OAuthClients of NAMESPACE (repeatable; a host bound to several "
                          "namespaces is shared by them). Unbound hosts go to their oldest claimant's namespace")
    run.add_argument("--document-sync-interval", default="5s",
                     help="at most how often each replica refreshes what it serves from its watch of the record "
                          "Secrets, only after a record changed (default 5s)")
    run.set_defaults(handler=_run)

    kubectl_plugin.add_commands(sub)  # rotate, status: the same as `kubectl clientreg ...`

    crds = sub.add_parser("crds", help="print the CustomResourceDefinitions (YAML)")
    crds.add_argument("--output-dir", default=None, help="write one file per CRD here instead")
    crds.set_defaults(handler=_crds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in kubectl_plugin.COMMANDS:
        return kubectl_plugin.run_command(args)
    return int(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
