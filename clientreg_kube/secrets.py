"""The two Secrets of an OAuthClient: the credentials workloads mount, and the operator-only record.

Rendering is pure (a record and a template in, a Secret body out) so the operator and the Pulumi provider's
Kubernetes option publish the same Secret; :class:`SecretWriter` does the writing against any
:class:`~clientreg_kube.cluster.Cluster`, and only when the content differs (no write for a
stable client, and tampering is undone on the next look).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from pydantic import ValidationError

from clientreg.errors import ClientregError, StateError
from clientreg.record import RegistrationRecord
from clientreg.spec import SecretTemplate

from .cluster import Body, Cluster, Conflict
from .conventions import (
    CLIENT_ANNOTATION,
    CLIENT_LABEL,
    CLIENT_NAMESPACE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OAUTHCLIENT_CREATED_ANNOTATION,
    OAUTHCLIENT_UID_ANNOTATION,
    RECORD_FINALIZER,
    RECORD_KEY,
    RECORD_SECRET_TYPE,
    ROLE_CREDENTIALS,
    ROLE_LABEL,
    ROLE_RECORD,
    label_value,
)

log = logging.getLogger(__name__)


class SecretConflict(ClientregError):
    """The Secret name is taken by a Secret this OAuthClient does not own: never overwrite it."""

    reason = "SecretConflict"


def encode(data: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}


def decode(secret: Body | None) -> dict[str, str]:
    if not secret:
        return {}
    out = {key: base64.b64decode(value).decode(errors="replace") for key, value in (secret.get("data") or {}).items()}
    # stringData never comes back from the API server, but a fake or a hand-written body may carry it.
    out.update(secret.get("stringData") or {})
    return out


def owner_reference(owner: Body) -> dict[str, Any]:
    """Garbage collection with the OAuthClient: controller=True marks which object writes the Secret."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def is_owned_by(secret: Body, owner_uid: str) -> bool:
    refs = secret.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs)


def _labels(client_name: str, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = dict(extra or {})
    # Ours last: a template must not be able to hide a Secret from the operator's watch.
    labels.update({MANAGED_BY_LABEL: MANAGED_BY, ROLE_LABEL: role, CLIENT_LABEL: label_value(client_name)})
    return labels


def key_name(words: tuple[str, ...], like: str) -> str:
    """``words`` spelt in the style of the template key ``like``: CLIENT_ID → PRIVATE_KEY, clientId → privateKey,
    client-id → private-key, client.id → private.key; anything else (client_id) → private_key."""
    if "-" in like:
        sep = "-"
    elif "." in like and "_" not in like:
        sep = "."
    else:
        sep = "_"
    if like.isupper():
        return sep.join(words).upper()
    if sep == "_" and "_" not in like and any(c.isupper() for c in like[1:]):
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return sep.join(words)


def credentials_data(record: RegistrationRecord, template: SecretTemplate) -> dict[str, str]:
    """What workloads read: client ID and secret under the template's keys, endpoints, extra keys, and
    for a private_key_jwt client the PEM private key and its key ID (named like the client ID key)."""
    secret = record.client_secret.get_secret_value() if record.client_secret else None
    values = {"clientId": record.client_id, "clientSecret": secret or "", "issuer": record.issuer or "",
              "tokenEndpoint": record.token_endpoint or ""}
    data: dict[str, str] = {}
    for key, text in template.extra_data.items():
        for placeholder, value in values.items():
            text = text.replace("{" + placeholder + "}", value)
        data[key] = text
    data[template.client_id_key] = record.client_id
    if secret is not None:
        data[template.client_secret_key] = secret
    issuer_key, token_endpoint_key = template.optional_key("issuer"), template.optional_key("tokenEndpoint")
    if issuer_key and record.issuer:
        data[issuer_key] = record.issuer
    if token_endpoint_key and record.token_endpoint:
        data[token_endpoint_key] = record.token_endpoint
    credentials = record.credentials()
    for field, words in (("private_key", ("private", "key")), ("key_id", ("key", "id"))):
        if credentials.get(field):
            data[key_name(words, template.client_id_key)] = credentials[field]
    return data


def credential_keys(template: SecretTemplate | None) -> tuple[str, ...]:
    """The keys a workload authenticates with: client ID, client secret, private key and key ID."""
    template = template or SecretTemplate()
    like = template.client_id_key
    return (like, template.client_secret_key, key_name(("private", "key"), like), key_name(("key", "id"), like))


def credentials_changed(existing: Body | None, desired: Body, template: SecretTemplate | None) -> bool:
    """True when writing ``desired`` over ``existing`` changes what workloads authenticate with: a new client
    ID, secret, private key or key ID (a key rotation keeps the client ID). False for a first Secret: nothing
    ran with other credentials. Labels, annotations and other keys (endpoints, extra data) do not count."""
    if existing is None:
        return False
    have, want = decode(existing), decode(desired)
    return any(have.get(key) != want.get(key) for key in credential_keys(template))


def render_credentials(record: RegistrationRecord, template: SecretTemplate | None, *, name: str, namespace: str,
                       client_name: str, owner: Body | None = None) -> Body:
    template = template or SecretTemplate()
    metadata: Body = {"name": name, "namespace": namespace,
                      "labels": _labels(client_name, ROLE_CREDENTIALS, template.labels)}
    if template.annotations:
        metadata["annotations"] = dict(template.annotations)
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
            "data": encode(credentials_data(record, template))}


def render_record(record: RegistrationRecord, *, name: str, namespace: str, client_name: str,
                  client_namespace: str, owner: Body | None = None) -> Body:
    """The record Secret (the operator's registration state): in the records namespace, naming its
    OAuthClient by labels and an annotation (no ownerReference can cross namespaces)."""
    labels = _labels(client_name, ROLE_RECORD, {CLIENT_NAMESPACE_LABEL: client_namespace})
    metadata: Body = {"name": name, "namespace": namespace, "labels": labels, "finalizers": [RECORD_FINALIZER],
                      "annotations": {CLIENT_ANNOTATION: f"{client_namespace}/{client_name}",
                                      "clientreg.dev/note": "Registration access token and state of an "
                                      "OAuthClient; workloads never need it. Deleting it orphans the client."}}
    if owner is not None:
        # Which OAuthClient, and how old: every replica's record feed orders document claimants by it.
        metadata["annotations"].update(_owner_annotations(owner))
    payload = json.dumps(record.to_storage(), sort_keys=True, separators=(",", ":"))
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": RECORD_SECRET_TYPE,
            "data": encode({RECORD_KEY: payload})}


def _owner_annotations(owner: Body) -> dict[str, str]:
    meta = owner["metadata"]
    out = {CLIENT_ANNOTATION: f"{meta.get('namespace', '')}/{meta['name']}",
           OAUTHCLIENT_UID_ANNOTATION: str(meta["uid"])}
    if meta.get("creationTimestamp"):
        out[OAUTHCLIENT_CREATED_ANNOTATION] = str(meta["creationTimestamp"])
    return out


def read_record(secret: Body | None) -> RegistrationRecord | None:
    if secret is None:
        return None
    text = decode(secret).get(RECORD_KEY)
    if not text:
        return None
    try:
        return RegistrationRecord.from_storage(json.loads(text))
    except (ValueError, ValidationError) as exc:
        name = secret.get("metadata", {}).get("name")
        raise StateError(f"record Secret {name} is unreadable ({type(exc).__name__}): restore it from a backup, "
                         "or delete it to register a new client (the old one stays at the AS)") from None


def _differs(existing: Body, desired: Body) -> bool:
    """True when ``existing`` lacks something ``desired`` demands (foreign labels and annotations may stay)."""
    if (existing.get("data") or {}) != desired["data"] or existing.get("type", "Opaque") != desired["type"]:
        return True
    have, want = existing.get("metadata", {}), desired["metadata"]
    for field in ("labels", "annotations"):
        if any((have.get(field) or {}).get(k) != v for k, v in (want.get(field) or {}).items()):
            return True
    if want.get("ownerReferences") and not any(
            r.get("uid") == want["ownerReferences"][0]["uid"] for r in have.get("ownerReferences") or []):
        return True
    return not set(want.get("finalizers") or []) <= set(have.get("finalizers") or [])


def _merged(existing: Body, desired: Body) -> Body:
    body: Body = json.loads(json.dumps(desired))
    have, meta = existing.get("metadata", {}), body["metadata"]
    for field in ("labels", "annotations"):
        merged = dict(have.get(field) or {})
        merged.update(meta.get(field) or {})
        if merged:
            meta[field] = merged
    meta["finalizers"] = sorted(set(have.get("finalizers") or []) | set(meta.get("finalizers") or []))
    if not meta["finalizers"]:
        del meta["finalizers"]
    meta["resourceVersion"] = have.get("metadata", {}).get("resourceVersion") or have.get("resourceVersion")
    return body


class SecretWriter:
    """Writes a Secret only when it differs, and never one that belongs to someone else."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def publish(self, desired: Body, *, owner_uid: str | None, existing: Body | None = None,
                read_first: bool = True) -> bool:
        """Create or update ``desired``; True when something was written."""
        namespace, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if existing is None and read_first:
            existing = self.cluster.get_secret(namespace, name)
        if existing is None:
            try:
                self.cluster.create_secret(namespace, desired)
                return True
            except Conflict:
                existing = self.cluster.get_secret(namespace, name)
                if existing is None:
                    raise
        if owner_uid is not None and not is_owned_by(existing, owner_uid):
            raise SecretConflict(f"Secret {namespace}/{name} already exists and is not managed by this OAuthClient: "
                                 "choose another spec.secretName or delete that Secret")
        if not _differs(existing, desired):
            return False
        body = _merged(existing, desired)
        try:
            self.cluster.replace_secret(namespace, name, body)
        except Conflict:
            # Someone wrote it between our read and our write: start over from what is there now.
            fresh = self.cluster.get_secret(namespace, name)
            if fresh is None:
                self.cluster.create_secret(namespace, desired)
            else:
                self.cluster.replace_secret(namespace, name, _merged(fresh, desired))
        return True

    def release(self, namespace: str, name: str) -> None:
        """Drop the record finalizer and delete the Secret: the operator is done with it."""
        self.cluster.patch_secret(namespace, name, {"metadata": {"finalizers": None}})
        self.cluster.delete_secret(namespace, name)


# --- Secrets whose owner lives outside the cluster (the Pulumi provider's Kubernetes option) ----------
#
# No object in the cluster can be named in ownerReferences, so the owner is named in an annotation and
# checked before every write and every deletion: a Secret that does not carry it is never taken over.

#: Names the owner of a credentials Secret that has no owner object in the cluster (e.g. a Pulumi resource).
OWNER_ANNOTATION = "clientreg.dev/owner"


def claim(desired: Body, owner: str) -> Body:
    """``desired`` annotated as belonging to ``owner`` (a copy)."""
    body: Body = json.loads(json.dumps(desired))
    body["metadata"].setdefault("annotations", {})[OWNER_ANNOTATION] = owner
    return body


def claimed_by(secret: Body | None) -> str | None:
    """The owner a Secret's annotation names, if any."""
    if not secret:
        return None
    owner = (secret.get("metadata", {}).get("annotations") or {}).get(OWNER_ANNOTATION)
    return str(owner) if owner else None


def is_current(existing: Body | None, desired: Body) -> bool:
    """True when ``existing`` holds everything ``desired`` demands (what :meth:`SecretWriter.publish` skips)."""
    return existing is not None and not _differs(existing, desired)


class ClaimedSecretWriter(SecretWriter):
    """:class:`SecretWriter` for Secrets claimed through :data:`OWNER_ANNOTATION` instead of ownerReferences.

    ``owners`` are the names this writer accepts as its own: the current one (written into the Secret)
    and former ones (a renamed owner takes its Secret along).
    """

    def __init__(self, cluster: Cluster, owners: tuple[str, ...]) -> None:
        super().__init__(cluster)
        self.owners = owners

    def check_claim(self, existing: Body | None, namespace: str, name: str) -> None:
        if existing is not None and claimed_by(existing) not in self.owners:
            raise SecretConflict(f"Secret {namespace}/{name} already exists and is not managed by {self.owners[0]}: "
                                 "choose another Secret name or delete that Secret")

    def publish_claimed(self, desired: Body) -> bool:
        """Create or update ``claim(desired, owners[0])``; True when something was written."""
        body = claim(desired, self.owners[0])
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        existing = self.cluster.get_secret(namespace, name)
        self.check_claim(existing, namespace, name)
        if existing is None:
            try:
                self.cluster.create_secret(namespace, body)
                return True
            except Conflict:
                existing = self.cluster.get_secret(namespace, name)
                if existing is None:
                    raise
                self.check_claim(existing, namespace, name)
        return self.publish(body, owner_uid=None, existing=existing)

    def withdraw(self, namespace: str, name: str) -> bool:
        """Delete the Secret if it is ours; False when it is gone already or belongs to someone else."""
        existing = self.cluster.get_secret(namespace, name)
        if existing is None or claimed_by(existing) not in self.owners:
            return False
        self.cluster.delete_secret(namespace, name)
        return True
