"""The one shape every real or dev authorization server started for tests is handed back in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PeerServer:
    """A running authorization server that tests may register clients with.

    ``extra`` carries what differs between servers (admin URLs, feature flags found at start)
    so that the common fields stay few and every helper can fill them.
    """

    name: str
    issuer: str
    registration_endpoint: str
    token_endpoint: str
    initial_access_token: str | None
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)
