"""The Flask application: Authlib's authorization server wired to the dev server's routes."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .authentication import PrivateKeyJWT, shared_secret_methods
from .cimd import ClientResolver
from .counters import RequestCounter
from .discovery import metadata_routes, server_metadata
from .registration import ConfigurationEndpoint, RegistrationEndpoint
from .settings import Deployment
from .storage import Storage
from .tokens import (
    DevClientCredentialsGrant,
    DevIntrospectionEndpoint,
    keep_issued_tokens_out_of_logs,
    token_saver,
)

DEV_PREFIX = "/_dev"
_MAX_BODY_BYTES = 1024 * 1024
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


def _authorization_server(app: Flask, deployment: Deployment, storage: Storage) -> AuthorizationServer:
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": deployment.settings.access_token_lifetime}
    app.config["OAUTH2_SCOPES_SUPPORTED"] = deployment.settings.allowed_scopes
    server = AuthorizationServer(app, query_client=ClientResolver(deployment, storage).get_client,
                                 save_token=token_saver(deployment, storage))
    for method, authenticate in shared_secret_methods(deployment).items():
        server.register_client_auth_method(method, authenticate)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT(deployment, storage))
    server.register_grant(DevClientCredentialsGrant)
    server.register_endpoint(RegistrationEndpoint(deployment, storage))
    server.register_endpoint(ConfigurationEndpoint(deployment, storage))
    server.register_endpoint(DevIntrospectionEndpoint(deployment, storage))
    return server


def _dev_blueprint(storage: Storage, counter: RequestCounter) -> Blueprint:
    dev = Blueprint("dev", __name__, url_prefix=DEV_PREFIX)

    @dev.get("/clients")
    def list_clients() -> Response:
        return jsonify(storage.list_client_ids())

    @dev.get("/requests")
    def request_counts() -> Response:
        return jsonify(counter.snapshot())

    @dev.post("/reset-counters")
    def reset_counters() -> tuple[str, int]:
        counter.reset()
        return "", 204

    return dev


def create_app(deployment: Deployment, storage: Storage, counter: RequestCounter) -> Flask:
    keep_issued_tokens_out_of_logs()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = _MAX_BODY_BYTES
    authorization = _authorization_server(app, deployment, storage)
    prefix = deployment.path_prefix
    metadata = dict(server_metadata(deployment))

    def serve_metadata() -> Response:
        return jsonify(metadata)

    def register() -> Response:
        return authorization.create_endpoint_response("client_registration")  # type: ignore[no-any-return]

    def configure(client_id: str) -> Response:
        return authorization.create_endpoint_response("client_configuration")  # type: ignore[no-any-return]

    def issue_token() -> Response:
        return authorization.create_token_response()  # type: ignore[no-any-return]

    def introspect() -> Response:
        return authorization.create_endpoint_response("introspection")  # type: ignore[no-any-return]

    for index, route in enumerate(metadata_routes(deployment)):
        app.add_url_rule(route, f"metadata_{index}", serve_metadata, methods=["GET"])
    app.add_url_rule(f"{prefix}/register", "register", register, methods=["POST"])
    app.add_url_rule(f"{prefix}/register/<client_id>", "configure", configure,
                     methods=["GET", "PUT", "DELETE"])
    app.add_url_rule(f"{prefix}/token", "token", issue_token, methods=["POST"])
    app.add_url_rule(f"{prefix}/introspect", "introspect", introspect, methods=["POST"])
    if deployment.serves_dev_endpoints:
        app.register_blueprint(_dev_blueprint(storage, counter))

    @app.before_request
    def count_request() -> None:
        if request.path.startswith(DEV_PREFIX + "/"):
            return
        route = request.url_rule.rule if request.url_rule is not None else request.path
        counter.count(request.method, route)

    @app.errorhandler(HTTPException)
    def http_error_as_json(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        body = {"error": _HTTP_ERROR_CODES.get(status, "invalid_request" if status < 500 else "server_error"),
                "error_description": error.description or error.name}
        return jsonify(body), status

    return app
