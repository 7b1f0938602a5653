"""The provider's configuration: the default authorization server of every OAuthClient it manages.

``pulumi config set clientreg:issuer https://auth.example.com`` and
``pulumi config set --secret clientreg:initialAccessToken …`` once per stack, instead of repeating them on
every resource. The defaults apply as one block, and only to a client that names no server of its own
(no ``issuer``, no ``registrationEndpoint``): an initial access token meant for one AS is never sent to
another one a resource names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import args
from ..argnames import camel, snake
from .schema import CONFIG_ARGS, IMPORT_CONFIG, config_variables

#: What names a server on a resource: either one means the resource's own server block is used.
SERVER_NAMES = ("issuer", "registration_endpoint")


@dataclass(frozen=True)
class ProviderConfig:
    """Plain (revealed) configuration values by snake_case argument name."""

    values: dict[str, Any] = field(default_factory=dict)

    def server_defaults(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """The configured server arguments a resource without a server of its own takes."""
        if any(props.get(name) for name in SERVER_NAMES):
            return {}
        return {name: value for name in CONFIG_ARGS if (value := self.values.get(name)) is not None
                and props.get(name) is None}

    def get(self, name: str) -> Any:
        return self.values.get(name)


def parse(raw: Mapping[str, Any]) -> ProviderConfig:
    """Configuration from ``Configure``/``CheckConfig``: keys ``issuer`` or ``clientreg:config:issuer``, values
    typed or (as `pulumi config set` stores them) strings holding JSON for lists and numbers."""
    kinds = config_variables()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = snake(key.rsplit(":", 1)[-1])  # issuer, clientreg:issuer or clientreg:config:issuer
        if name not in kinds or value is None or value == "":
            continue
        values[name] = _typed(kinds[name].get("type"), value)
    return ProviderConfig(values)


def _typed(kind: Any, value: Any) -> Any:
    if isinstance(value, str) and kind in ("array", "number", "integer", "boolean"):
        try:
            return json.loads(value)
        except ValueError:
            return value  # reported by check_config, naming the key
    return value


def problems(config: ProviderConfig) -> list[tuple[str, str]]:
    """Field errors of the configuration (camelCase key, rule), by the same models as a resource's."""
    server = {k: v for k, v in config.values.items() if k in args.SERVER_ARGS}
    if not server:
        return []
    # A resource without a server of its own is checked with exactly these values.
    found = [(camel(name), rule) for name, rule in args.problems(server) if name in args.SERVER_ARGS]
    return found


#: Names shown to users for the import settings (documented in docs/pulumi.md).
IMPORT_KEYS = tuple(f"clientreg:{camel(name)}" for name in IMPORT_CONFIG)
