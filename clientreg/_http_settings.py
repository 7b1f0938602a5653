"""How patient, how fast and how trusting one :class:`~clientreg.http.HttpClient` is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ._addresses import AddressPolicy
from .errors import ConfigurationError

__all__ = ["USER_AGENT", "HttpSettings"]

USER_AGENT: Final = "clientreg/0.1"


@dataclass(frozen=True)
class HttpSettings:
    """How patient, how fast and how trusting one :class:`HttpClient` is."""

    timeout: float = 10.0
    connect_timeout: float = 5.0
    retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    # PEM text, not a path: it comes from AuthorizationServer.spec.caBundle. Not in repr: long.
    ca_bundle: str | None = field(default=None, repr=False)
    requests_per_second: float | None = None
    allow_insecure_loopback: bool = True
    max_body_bytes: int = 1_000_000
    #: Seconds one attempt may take from sending to the last byte of the body. ``timeout`` bounds each
    #: read, so without this a server dripping a byte every few seconds would hold a reconcile forever.
    deadline: float = 60.0
    #: Which addresses connections may go to, checked after resolving and before connecting
    #: (:mod:`clientreg.ssrf`). None: any address (and proxies from the environment are honoured).
    address_policy: AddressPolicy | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "backoff_base", "backoff_max", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"must not be negative, got {getattr(self, name)}", field=name)
        if self.retries < 0:
            raise ConfigurationError(f"must not be negative, got {self.retries}", field="retries")
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ConfigurationError(f"must be positive, got {self.requests_per_second}",
                                     field="requestsPerSecond")
        if self.max_body_bytes <= 0:
            raise ConfigurationError(f"must be positive, got {self.max_body_bytes}", field="max_body_bytes")
        if self.deadline <= 0:
            raise ConfigurationError(f"must be positive, got {self.deadline}", field="deadline")
