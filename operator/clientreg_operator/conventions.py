"""Names the operator puts on the cluster: labels, annotations, finalizers, Secret names.

Kept in one place because they are a contract with users (the rotate annotation, the Secret labels
that GitOps tools and NetworkPolicies select on) and between operator versions.
"""

from __future__ import annotations

import hashlib

from clientreg.spec import GROUP, VERSION

API_VERSION = f"{GROUP}/{VERSION}"
OAUTHCLIENTS = "oauthclients"
AUTHORIZATIONSERVERS = "authorizationservers"
CLUSTERAUTHORIZATIONSERVERS = "clusterauthorizationservers"

#: Set to any new value (a timestamp, a ticket number) to rotate the credentials once, like ``cmctl renew``.
ROTATE_ANNOTATION = f"{GROUP}/rotate"
#: On a Deployment: the names of credential Secrets (comma-separated) whose rotation restarts it.
RESTART_ON_ROTATION_ANNOTATION = f"{GROUP}/restart-on-rotation"
#: Written on the restarted pod template: the client ID that triggered the rollout.
ROTATED_CLIENT_ANNOTATION = f"{GROUP}/rotated-client-id"

#: Holds the OAuthClient until its client is deleted at the AS (or orphaned by policy).
CLIENT_FINALIZER = f"{GROUP}/finalizer"
#: Holds the record Secret until the operator no longer needs it: a namespace deletion removes every
#: Secret at once, and without the registration access token the client could not be deleted.
RECORD_FINALIZER = f"{GROUP}/record"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "clientreg-operator"
#: Every Secret the operator writes carries this label: it is the only Secret watch (and cache) it has.
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
ROLE_LABEL = f"{GROUP}/role"
ROLE_CREDENTIALS = "credentials"
ROLE_RECORD = "record"
#: Label values are at most 63 characters; OAuthClient names may be longer, so long names are hashed.
CLIENT_LABEL = f"{GROUP}/oauthclient"

RECORD_SECRET_TYPE = f"{GROUP}/registration-record"
#: On a record Secret: the OAuthClient it belongs to (``<namespace>/<name>``), its UID and creationTimestamp.
#: The record feed of every replica reads them to serve documents and to order claimants by age.
OAUTHCLIENT_ANNOTATION = f"{GROUP}/oauthclient"
OAUTHCLIENT_UID_ANNOTATION = f"{GROUP}/oauthclient-uid"
OAUTHCLIENT_CREATED_ANNOTATION = f"{GROUP}/oauthclient-created"
#: Record Secrets in the records namespace are named ``clientreg-record-<OAuthClient uid>``.
RECORD_SECRET_PREFIX = "clientreg-record-"
RECORD_KEY = "record.json"

FIELD_MANAGER = "clientreg-operator"
EVENT_COMPONENT = "clientreg-operator"


def label_value(name: str) -> str:
    if len(name) <= 63:
        return name
    return name[:52] + "-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def record_secret_name(client_name: str) -> str:
    """The operator-only Secret of one OAuthClient (its registration access token lives there)."""
    name = f"{client_name}-clientreg-record"
    if len(name) <= 253:
        return name
    return f"{client_name[:200]}-{hashlib.sha256(client_name.encode()).hexdigest()[:16]}-clientreg-record"

#: The kubernetes client picks JSON Patch for PATCH by default; every patch here is a JSON merge patch.
MERGE_PATCH = "application/merge-patch+json"
