"""``pulumi-resource-clientreg``: the gRPC server of Pulumi's provider protocol, over :mod:`.operations`.

The engine starts the plugin with its own address as the first argument and reads the port this server
listens on (127.0.0.1 only) from the first line of stdout. Every call renames properties at the wire
(schema camelCase ↔ the dynamic provider's snake_case), reveals the secrets the engine sends and sends
every credential back secret. Errors reach the user as one line naming the Pulumi argument: no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime import settings
from pulumi.runtime.proto import engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc
from pydantic import SecretStr, ValidationError

from clientreg import rfc7592
from clientreg.errors import ClientregError
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec

from ..argnames import props_in
from ..lifecycle import ADDRESS_POLICY, OAuthClientError
from . import operations, wire
from .config import ProviderConfig, parse, problems
from .schema import GET_CLIENT, RESOURCE, VERSION, render

T = TypeVar("T")
_DIFF_KIND = {False: provider_pb2.PropertyDiff.UPDATE, True: provider_pb2.PropertyDiff.UPDATE_REPLACE}


def snake_props(struct: Any) -> tuple[dict[str, Any], set[str]]:
    """Plain snake_case properties, and the names of those that arrived secret."""
    plain, secret = wire.unwrap(struct)
    return props_in("snake", plain), {props_in("snake", {n: None}).popitem()[0] for n in secret}


def camel_struct(props: Mapping[str, Any], secret: Iterable[str] = ()) -> Any:
    """``props`` as the engine gets them: camelCase names, credentials and ``secret`` names as secrets."""
    names = {*operations.SECRET_NAMES, *secret}
    return wire.wrap(props_in("camel", props), props_in("camel", dict.fromkeys(names)).keys())


class _ResourceLog:
    """The engine, for ``pulumi.log`` in the dynamic provider's steps: each message attached to the resource
    being worked on (the URN of the call), not to the stack."""

    def __init__(self, engine: Any, urn: str) -> None:
        self._engine, self._urn = engine, urn

    def Log(self, request: Any) -> Any:
        if not request.urn:
            request.urn = self._urn
        return self._engine.Log(request)


class ClientregProvider(provider_pb2_grpc.ResourceProviderServicer):
    """One provider process: its configuration, and an engine to log to."""

    def __init__(self, engine_address: str | None = None) -> None:
        self.config = ProviderConfig()
        self._engine = (engine_pb2_grpc.EngineStub(grpc.insecure_channel(engine_address))
                        if engine_address else None)

    def _run(self, context: grpc.ServicerContext, step: Callable[[], T], urn: str = "") -> T:
        """One call: the engine for pulumi.log in this thread, errors as one line naming the argument."""
        settings.SETTINGS.engine = _ResourceLog(self._engine, urn) if self._engine is not None else None
        try:
            return step()
        except OAuthClientError as exc:
            _abort(context, operations.pulumi_words(str(exc)))
        except ClientregError as exc:
            _abort(context, operations.pulumi_words(str(exc)))
        except ValidationError as exc:
            # pydantic's own text quotes the input value, which may be a token: the field and the rule only.
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            _abort(context, operations.pulumi_words(f"{where}: {error['msg']}" if where else str(error["msg"])))
        except (ValueError, KeyError, TypeError) as exc:
            # A bug or a value no check caught: its type and words, never a traceback.
            _abort(context, f"clientreg provider: {type(exc).__name__}: {operations.pulumi_words(str(exc))}")

    # --- the provider itself -----------------------------------------------------------------------

    def Handshake(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def GetPluginInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.GetSchemaResponse(schema=render())

    def CheckConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        news, _ = wire.unwrap(request.news)
        failures = [provider_pb2.CheckFailure(property=p, reason=r) for p, r in problems(parse(news))]
        return provider_pb2.CheckResponse(inputs=request.news, failures=failures)

    def DiffConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        olds, _ = wire.unwrap(request.olds)
        news, _ = wire.unwrap(request.news)
        changed = sorted(k for k in {*olds, *news} if olds.get(k) != news.get(k))
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed)

    def Configure(self, request: Any, context: grpc.ServicerContext) -> Any:
        given, _ = wire.unwrap(request.args)
        self.config = parse({**dict(request.variables), **given})
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Cancel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return empty_pb2.Empty()

    # --- OAuthClient ---------------------------------------------------------------------------------

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._only(context, request.urn)
        news, secret = snake_props(request.news)
        props, found = operations.check(request.urn, news, self.config)
        failures = [provider_pb2.CheckFailure(property=p, reason=r) for p, r in found]
        return provider_pb2.CheckResponse(inputs=camel_struct(props, secret), failures=failures)

    def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
        olds, _ = snake_props(request.olds)
        news, _ = snake_props(request.news)
        found = self._run(context, lambda: operations.diff(olds, news, datetime.now(UTC)))
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if found.changes else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=found.replaces, stables=found.stables, deleteBeforeReplace=found.delete_before_replace,
            diffs=sorted(found.detailed), hasDetailedDiff=True,
            detailedDiff={k: provider_pb2.PropertyDiff(kind=_DIFF_KIND[r], inputDiff=False)
                          for k, r in found.detailed.items()})

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        props, secret = snake_props(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(id="", properties=camel_struct(operations.preview_create(props),
                                                                              secret))
        id_, outs = self._run(context, lambda: operations.create(props), request.urn)
        return provider_pb2.CreateResponse(id=id_, properties=camel_struct(outs, secret))

    def Read(self, request: Any, context: grpc.ServicerContext) -> Any:
        props, secret = snake_props(request.properties)
        inputs, input_secret = snake_props(request.inputs)
        outs = self._run(context, lambda: operations.read(request.id, props, self.config), request.urn)
        if outs is None:  # gone: the resource leaves the state
            return provider_pb2.ReadResponse(id="")
        if not props:  # `pulumi import`: the inputs come from what the AS holds
            inputs = operations.import_inputs(outs)
        return provider_pb2.ReadResponse(id=request.id, properties=camel_struct(outs, secret),
                                         inputs=camel_struct(inputs, input_secret))

    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        olds, _ = snake_props(request.olds)
        news, secret = snake_props(request.news)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=camel_struct(operations.preview_update(olds, news), secret))
        outs = self._run(context, lambda: operations.update(olds, news), request.urn)
        return provider_pb2.UpdateResponse(properties=camel_struct(outs, secret))

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        props, _ = snake_props(request.properties)
        self._run(context, lambda: operations.delete(props), request.urn)
        return empty_pb2.Empty()

    # --- getClient ---------------------------------------------------------------------------------

    def Invoke(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.tok != GET_CLIENT:
            _abort(context, f"unknown function {request.tok} (this provider has {GET_CLIENT})",
                   grpc.StatusCode.UNIMPLEMENTED)
        given, _ = snake_props(request.args)
        missing = [p for p in ("registration_client_uri", "registration_access_token") if not given.get(p)]
        if missing:
            return provider_pb2.InvokeResponse(failures=[provider_pb2.CheckFailure(
                property=props_in("camel", {m: None}).popitem()[0], reason="required") for m in missing])
        result = self._run(context, lambda: get_client(given, self.config))
        return provider_pb2.InvokeResponse(**{"return": camel_struct(result)})

    def _only(self, context: grpc.ServicerContext, urn: str) -> None:
        kind = urn.split("::")[2] if urn.count("::") >= 3 else RESOURCE
        if kind.rsplit("$", 1)[-1] != RESOURCE:
            _abort(context, f"unknown resource type {kind} (this provider has {RESOURCE})",
                   grpc.StatusCode.UNIMPLEMENTED)


def get_client(given: Mapping[str, Any], config: ProviderConfig) -> dict[str, Any]:
    """One RFC 7592 read; the client's credentials as the AS returned them (the secret stays secret)."""
    uri = str(given["registration_client_uri"])
    ca_bundle = given.get("ca_bundle") or config.get("ca_bundle")
    spec = AuthorizationServerSpec(registration_endpoint=uri, ca_bundle=ca_bundle)
    server = ServerConnection.for_spec(spec, name="pulumi", address_policy=ADDRESS_POLICY)
    try:
        info = rfc7592.read(server.http, uri, SecretStr(str(given["registration_access_token"])))
    finally:
        server.close()
    secret = info.client_secret.get_secret_value() if info.client_secret else None
    return {"client_id": info.client_id, "client_secret": secret,
            "client_secret_expires_at": info.client_secret_expires_at,
            "registration_client_uri": info.registration_client_uri or uri, "metadata": info.metadata}


def _abort(context: grpc.ServicerContext, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def serve(engine_address: str | None, port: int = 0) -> tuple[grpc.Server, int]:
    """Start the server on 127.0.0.1 (``port`` 0: any free port); returns it and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(ClientregProvider(engine_address), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    """What the engine runs: ``pulumi-resource-clientreg [flags] <engine address>``."""
    argv = sys.argv[1:] if argv is None else argv
    positional = [a for a in argv if not a.startswith("-")]
    server, port = serve(positional[-1] if positional else None)
    print(port, flush=True)  # the engine reads the port from the first line of stdout
    server.wait_for_termination()
    return 0
