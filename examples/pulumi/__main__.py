"""OAuth clients for several tenants, from tenants.yaml: one OAuthClient per entry.

Outputs per tenant and client: ``<tenant>/<client>/client_id`` (plain) and
``<tenant>/<client>/client_secret`` (secret), plus the tenant's token endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import yaml
from clientreg_pulumi import OAuthClient


def provision(document: dict[str, Any], config: pulumi.Config | None = None) -> dict[str, OAuthClient]:
    """Declare every client of every tenant; the key of the result is ``<tenant>/<client>``."""
    config = config or pulumi.Config()
    clients: dict[str, OAuthClient] = {}
    for tenant in document["tenants"]:
        # Each tenant's server has its own initial access token; a tenant without one registers openly.
        iat = config.get_secret(f"iat-{tenant['name']}")
        server = {key: tenant[key] for key in ("issuer", "registration_endpoint", "ca_bundle") if key in tenant}
        first: OAuthClient | None = None
        for entry in tenant["clients"]:
            arguments = {key: value for key, value in entry.items() if key != "name"}
            if "adopt_client_id" in arguments:
                # A client registered elsewhere, taken over: its registration access token is a secret,
                # so it comes from config (`pulumi config set --secret rat-<tenant>-<client> ...`), never the YAML.
                arguments["adopt_registration_access_token"] = config.require_secret(
                    f"rat-{tenant['name']}-{entry['name']}")
            key = f"{tenant['name']}/{entry['name']}"
            client = OAuthClient(f"{tenant['name']}-{entry['name']}", **server, **arguments,
                                 initial_access_token=iat)
            pulumi.export(f"{key}/client_id", client.client_id)
            pulumi.export(f"{key}/client_secret", client.client_secret)
            clients[key] = client
            first = first or client
        if first is not None:
            pulumi.export(f"{tenant['name']}/token_endpoint", first.token_endpoint)
    return clients


if __name__ == "__main__":
    provision(yaml.safe_load(Path(__file__).with_name("tenants.yaml").read_text()))
