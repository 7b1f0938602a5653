"""SQLite storage for the dev server: clients, access tokens and seen assertion IDs.

One connection behind a lock: the in-memory database exists only inside its connection, and a dev
server's load never makes the lock the bottleneck.

Registration access tokens and access tokens are stored as SHA-256 digests: they are 256-bit random
strings, so an unsalted digest cannot be reversed, and lookups stay one indexed query. Client secrets
are kept as issued because RFC 7592 reads return them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .models import IssuedAccessToken, RegisteredClient

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    client_secret TEXT,
    client_id_issued_at INTEGER NOT NULL,
    client_secret_expires_at INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    registration_access_token_digest TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token_digest TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_in INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_by_client ON access_tokens(client_id);
-- Tokens of Client ID Metadata Document clients: no row in clients to reference (the URL is the client).
CREATE TABLE IF NOT EXISTS document_client_tokens (
    token_digest TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_in INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS assertion_ids (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
"""


def token_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Storage:
    """Everything the dev server remembers; survives restarts when given a file."""

    def __init__(self, db_path: Path | None, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(db_path) if db_path else ":memory:", check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # Both pragmas are no-ops inside a transaction, so they go first.
        if db_path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            # With WAL this survives a crash of the process; only a power cut may lose the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        if found not in (0, _SCHEMA_VERSION):
            self._db.close()
            raise RuntimeError(f"{db_path}: dev server database schema {found}, expected {_SCHEMA_VERSION}")
        # Every statement is idempotent, so no transaction: executescript would commit one anyway.
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- clients ----------------------------------------------------------------------------------

    def insert_client(self, client: RegisteredClient, registration_access_token: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?)",
                (client.client_id, client.client_secret, client.client_id_issued_at,
                 client.client_secret_expires_at, json.dumps(client.metadata),
                 token_digest(registration_access_token)),
            )

    def replace_client(self, client: RegisteredClient, registration_access_token: str | None) -> None:
        """Store ``client`` as it now is; a new registration access token replaces the old one."""
        with self._transaction() as db:
            db.execute(
                "UPDATE clients SET client_secret = ?, client_secret_expires_at = ?, metadata = ? "
                "WHERE client_id = ?",
                (client.client_secret, client.client_secret_expires_at, json.dumps(client.metadata),
                 client.client_id),
            )
            if registration_access_token is not None:
                db.execute("UPDATE clients SET registration_access_token_digest = ? WHERE client_id = ?",
                           (token_digest(registration_access_token), client.client_id))

    def get_client(self, client_id: str) -> RegisteredClient | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            return None
        return RegisteredClient(
            client_id=row["client_id"],
            client_id_issued_at=row["client_id_issued_at"],
            metadata=json.loads(row["metadata"]),
            client_secret=row["client_secret"],
            client_secret_expires_at=row["client_secret_expires_at"],
        )

    def client_id_for_registration_access_token(self, registration_access_token: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT client_id FROM clients WHERE registration_access_token_digest = ?",
                                   (token_digest(registration_access_token),)).fetchone()
        return None if row is None else str(row["client_id"])

    def delete_client(self, client_id: str) -> bool:
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM clients WHERE client_id = ?", (client_id,)).rowcount
            db.execute("DELETE FROM assertion_ids WHERE client_id = ?", (client_id,))
        return deleted > 0

    def list_client_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT client_id FROM clients ORDER BY rowid").fetchall()
        return [str(row["client_id"]) for row in rows]

    # --- access tokens ----------------------------------------------------------------------------

    def save_access_token(self, access_token: str, client_id: str, scope: str, issued_at: int,
                          expires_in: int) -> None:
        with self._transaction() as db:
            registered = db.execute("SELECT 1 FROM clients WHERE client_id = ?", (client_id,)).fetchone()
            table = "access_tokens" if registered else "document_client_tokens"
            db.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)",
                       (token_digest(access_token), client_id, scope, issued_at, expires_in))

    def get_access_token(self, access_token: str) -> IssuedAccessToken | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM access_tokens WHERE token_digest = ? UNION ALL "
                                   "SELECT * FROM document_client_tokens WHERE token_digest = ?",
                                   (token_digest(access_token),) * 2).fetchone()
        if row is None:
            return None
        return IssuedAccessToken(token_digest=row["token_digest"], client_id=row["client_id"],
                                 scope=row["scope"], issued_at=row["issued_at"],
                                 expires_in=row["expires_in"], clock=self._clock)

    # --- client assertions (RFC 7523 replay protection) ---------------------------------------

    def remember_assertion_id(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record a JWT ID; False when the client used it before and it has not expired yet."""
        now = int(self._clock())
        with self._transaction() as db:
            db.execute("DELETE FROM assertion_ids WHERE expires_at < ?", (now,))
            inserted = db.execute("INSERT OR IGNORE INTO assertion_ids VALUES (?, ?, ?)",
                                  (client_id, jti, expires_at)).rowcount
        return inserted == 1
