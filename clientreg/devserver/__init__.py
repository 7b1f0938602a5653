"""The embedded dev authorization server behind ``clientreg dev-server``.

Authlib's RFC 7591/7592/8414 endpoints, the client_credentials grant and RFC 7662 introspection,
served by werkzeug over SQLite, plus ``/_dev/`` helpers for tests and benchmarks.
"""

from .server import DevServer, serve
from .settings import DevServerSettings

__all__ = ["DevServer", "DevServerSettings", "serve"]
