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
#: Holds the record Secret until the operator no longer needs it: a deleted record would lose the registration
#: access token, and without it the client could not be deleted (the operator writes a new one instead).
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
#: On a record Secret (it lives in the records namespace): the namespace of its OAuthClient.
CLIENT_NAMESPACE_LABEL = f"{GROUP}/oauthclient-namespace"
#: On a record Secret: ``<namespace>/<name>`` of its OAuthClient, unhashed (label values cannot hold it).
CLIENT_ANNOTATION = f"{GROUP}/oauthclient"

RECORD_SECRET_TYPE = f"{GROUP}/registration-record"
#: On a record Secret, beside CLIENT_ANNOTATION: its OAuthClient's UID and creationTimestamp. The record
#: feed of every replica reads them to serve documents and to order claimants by age.
OAUTHCLIENT_UID_ANNOTATION = f"{GROUP}/oauthclient-uid"
OAUTHCLIENT_CREATED_ANNOTATION = f"{GROUP}/oauthclient-created"
RECORD_KEY = "record.json"

FIELD_MANAGER = "clientreg-operator"
EVENT_COMPONENT = "clientreg-operator"


def label_value(name: str) -> str:
    if len(name) <= 63:
        return name
    return name[:52] + "-" + hashlib.sha256(name.encode()).hexdigest()[:10]


#: Record Secrets are ``clientreg-record-<OAuthClient uid>`` in the records namespace (the operator's own).
RECORD_PREFIX = "clientreg-record-"


def record_name(client_uid: str) -> str:
    """The record Secret of one OAuthClient (its registration access token lives there), in the records
    namespace. Keyed by UID: an OAuthClient deleted and created again under the same name is another client,
    and tenants of different namespaces may use the same name."""
    return RECORD_PREFIX + client_uid


def legacy_record_name(client_name: str) -> str:
    """Where the record lived before it moved to the records namespace (in the OAuthClient's own namespace,
    readable by every tenant who may read Secrets there). Used only to migrate it."""
    name = f"{client_name}-clientreg-record"
    if len(name) <= 253:
        return name
    return f"{client_name[:200]}-{hashlib.sha256(client_name.encode()).hexdigest()[:16]}-clientreg-record"

#: The kubernetes client picks JSON Patch for PATCH by default; every patch here is a JSON merge patch.
MERGE_PATCH = "application/merge-patch+json"
