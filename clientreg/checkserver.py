"""``clientreg check-server``: measure what an AS really supports with a throwaway client.

Each check is a fact observed on the wire, not read from the metadata document alone; the table in
docs/servers.md is generated from this report.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from . import rfc7591, rfc7592
from .discovery import Discovery, discover, registration_endpoint_of
from .errors import ClientregError, ProtocolError
from .http import HttpClient, HttpSettings
from .record import RegistrationRecord
from .rfc7591 import ClientInformation
from .ssrf import USER_CONFIGURED, AddressPolicy
from .tokens import client_credentials_token

YES, NO, PARTIAL, ERROR, SKIPPED = "yes", "no", "partial", "error", "skipped"


@dataclass
class Check:
    feature: str
    result: str
    detail: str = ""


@dataclass
class Report:
    issuer: str
    checks: list[Check] = field(default_factory=list)

    def add(self, feature: str, result: str, detail: str = "") -> None:
        self.checks.append(Check(feature, result, detail))

    def result(self, feature: str) -> str | None:
        return next((c.result for c in self.checks if c.feature == feature), None)

    def as_json(self) -> dict[str, Any]:
        return {"issuer": self.issuer,
                "checks": [{"feature": c.feature, "result": c.result, "detail": c.detail} for c in self.checks]}


def _probe_metadata(tag: str) -> dict[str, Any]:
    # response_types: [] — RFC 7591 defaults it to ["code"], which makes redirect_uris mandatory.
    return {"client_name": f"clientreg check-server {tag}", "grant_types": ["client_credentials"],
            "response_types": [], "token_endpoint_auth_method": "client_secret_basic"}


def check_server(issuer: str, *, initial_access_token: str | None = None, registration_endpoint: str | None = None,
                 ca_bundle: str | None = None, http: HttpClient | None = None,
                 address_policy: AddressPolicy | None = USER_CONFIGURED) -> Report:
    own_http = http is None
    http = http or HttpClient(HttpSettings(ca_bundle=ca_bundle, address_policy=address_policy))
    try:
        return _run(http, issuer, SecretStr(initial_access_token) if initial_access_token else None,
                    registration_endpoint)
    finally:
        if own_http:
            http.close()


def _run(http: HttpClient, issuer: str, iat: SecretStr | None, registration_endpoint: str | None) -> Report:
    report = Report(issuer)
    found: Discovery | None = None
    try:
        found = discover(http, issuer)
        report.add("discovery", YES, found.metadata_url)
        report.issuer = found.server.issuer
    except ClientregError as exc:
        report.add("discovery", NO, str(exc))
        if registration_endpoint is None:
            return report
    endpoint = registration_endpoint
    if endpoint is None and found is not None:
        try:
            endpoint = registration_endpoint_of(found)
        except ClientregError as exc:
            report.add("registration (RFC 7591)", NO, str(exc))
            return report
    assert endpoint is not None
    token_endpoint = found.server.token_endpoint if found else None
    report.add("client ID metadata documents", YES if found and found.server.client_id_metadata_document_supported
               else NO, "client_id_metadata_document_supported in metadata")

    tag = uuid.uuid4().hex[:8]
    created: list[ClientInformation] = []
    try:
        if iat is not None:
            try:
                anonymous = rfc7591.register(http, endpoint, _probe_metadata(tag + "-anon"))
                created.append(anonymous)
                report.add("initial access token required", NO, "anonymous registration accepted")
            except ProtocolError as exc:
                report.add("initial access token required", YES, f"anonymous registration refused (HTTP "
                           f"{exc.status})")
        try:
            info = rfc7591.register(http, endpoint, _probe_metadata(tag), initial_access_token=iat)
        except ClientregError as exc:
            report.add("registration (RFC 7591)", ERROR, str(exc))
            return report
        created.append(info)
        report.add("registration (RFC 7591)", YES, f"client {info.client_id}")
        if iat is None:
            report.add("initial access token required", NO, "registered without one")
        expires = info.client_secret_expires_at
        report.add("secret expiry", YES if expires else NO,
                   f"client_secret_expires_at={expires}" if expires is not None else "not returned")
        added = sorted(set(info.metadata) - set(_probe_metadata(tag)))
        report.add("server adds metadata defaults", YES if added else NO, ", ".join(added[:8]))
        _check_token(http, report, info, token_endpoint)
        _check_management(http, report, info, tag)
    finally:
        for client in created:
            if client.registration_client_uri and client.registration_access_token:
                with contextlib.suppress(ClientregError):
                    rfc7592.delete(http, client.registration_client_uri, client.registration_access_token)
    return report


def _check_token(http: HttpClient, report: Report, info: ClientInformation, token_endpoint: str | None) -> None:
    if not token_endpoint or info.client_secret is None:
        report.add("token with issued credentials", SKIPPED, "no token endpoint or no secret")
        return
    record = RegistrationRecord(client_id=info.client_id, client_secret=info.client_secret,
                                token_endpoint=token_endpoint, server_metadata=info.metadata)
    try:
        client_credentials_token(http, record)
        report.add("token with issued credentials", YES, "client_credentials grant")
    except ClientregError as exc:
        report.add("token with issued credentials", NO, str(exc))


def _check_management(http: HttpClient, report: Report, info: ClientInformation, tag: str) -> None:
    uri, rat = info.registration_client_uri, info.registration_access_token
    if not uri or rat is None:
        for feature in ("read (RFC 7592)", "update (RFC 7592)", "delete (RFC 7592)"):
            report.add(feature, NO, "no registration_client_uri / registration_access_token returned")
        return
    try:
        read = rfc7592.read(http, uri, rat)
        rotated_on_read = read.registration_access_token is not None and read.registration_access_token != rat
        report.add("read (RFC 7592)", YES, "RAT rotated on read" if rotated_on_read else "")
        rat = read.registration_access_token if rotated_on_read and read.registration_access_token else rat
        uri = read.registration_client_uri or uri
    except ClientregError as exc:
        report.add("read (RFC 7592)", NO, str(exc))
    body = {k: v for k, v in info.metadata.items() if k not in rfc7592.FIELDS_NOT_SENT_ON_UPDATE}
    body["client_name"] = f"clientreg check-server {tag} updated"
    try:
        updated = rfc7592.update(http, uri, rat, info.client_id, body)
        new_rat = updated.registration_access_token
        report.add("update (RFC 7592)", YES if updated.metadata.get("client_name") == body["client_name"]
                   else PARTIAL, "" if updated.registration_client_uri else
                   "registration_client_uri omitted from the response")
        report.add("RAT rotation on update", YES if new_rat is not None and new_rat != rat else NO)
        if new_rat is not None:
            rat = new_rat
        info.registration_access_token = rat
    except ClientregError as exc:
        report.add("update (RFC 7592)", NO, str(exc))
    probe = {**body, "clientreg_probe": tag}
    try:
        kept = rfc7592.update(http, uri, rat, info.client_id, probe)
        if kept.registration_access_token is not None:
            rat = kept.registration_access_token
            info.registration_access_token = rat
        report.add("unknown metadata", "kept" if kept.metadata.get("clientreg_probe") == tag else "dropped")
    except ProtocolError as exc:
        report.add("unknown metadata", "rejected", f"HTTP {exc.status}")
    except ClientregError as exc:
        report.add("unknown metadata", ERROR, str(exc))
    try:
        rfc7592.delete(http, uri, rat)
        info.registration_access_token = None
        report.add("delete (RFC 7592)", YES)
    except ClientregError as exc:
        report.add("delete (RFC 7592)", NO, str(exc))
        return
    try:
        rfc7592.read(http, uri, rat)
        report.add("read after delete", "still readable")
    except ClientregError as exc:
        report.add("read after delete", type(exc).__name__, f"HTTP {getattr(exc, 'status', '?')}")
