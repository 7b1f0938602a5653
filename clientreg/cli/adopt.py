"""``clientreg adopt``: take a client back whose registration access token someone else rotated.

After an RFC 7592 PUT by someone else, the AS rejects the token clientreg holds (reason
``RegistrationAccessTokenRevoked``, exit code 7) and clientreg replaces nothing. Whoever made the PUT holds
the new token; with it, this command restores the record, and the next apply reads the client again and
restores the declared values. The token is read from a file (never from an argument, which ``ps`` and
shell history show) and never printed.
"""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import SecretStr

from ..errors import ClientregError, ConfigurationError
from ._common import fail, open_store, out, state_option
from .show import one

#: RFC 6750 §2.1 b64token characters, bounded: what a Bearer token can be.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
MAX_TOKEN_LENGTH = 8192


def read_token(path: Path) -> SecretStr:
    """The registration access token in ``path`` (surrounding whitespace ignored), checked as a Bearer token."""
    try:
        raw = path.read_bytes()[: MAX_TOKEN_LENGTH + 2]
    except OSError as exc:
        raise ConfigurationError(f"cannot read the registration access token file: {exc.strerror}",
                                 source=str(path)) from None
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(token) > MAX_TOKEN_LENGTH or not set(token) <= _TOKEN_CHARS:
        raise ConfigurationError("the file does not hold one Bearer token (RFC 6750 §2.1: b64token characters, "
                                 f"at most {MAX_TOKEN_LENGTH})", source=str(path),
                                 field="registration access token", rule="RFC 6750 §2.1 b64token")
    return SecretStr(token)


@click.command()
@click.argument("name")
@state_option
@click.option("-n", "--namespace", default=None)
@click.option("--registration-access-token-file", "token_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A file holding the registration access token the AS last issued for the client.")
def adopt(name: str, state_dir: Path | None, namespace: str | None, token_file: Path) -> None:
    """Restore a client's registration access token (after RegistrationAccessTokenRevoked); apply then
    reads the client with it and restores the declared values."""
    try:
        token = read_token(token_file)
        store = open_store(state_dir, say=True)
        with store.locked():
            entry = one(store, name, namespace)
            assert entry.record is not None
            entry.record = entry.record.model_copy(update={"registration_access_token": token})
            store.write(entry)
    except ClientregError as exc:
        fail(exc)
    out.print(f"{entry.key}: registration access token of client {entry.record.client_id} restored; "
              "`clientreg apply` reads the client with it")
