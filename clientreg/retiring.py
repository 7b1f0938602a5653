"""An old client the AS will not let clientreg delete: 401 on the RFC 7592 DELETE of a retiring client.

RFC 7592 §2 answers 401 invalid_token both for a client that no longer exists and for a registration
access token that is no longer valid. The second happens when someone else holds the token: a PUT with
it (oidc-provider, Keycloak and Hydra rotate the token on every PUT) leaves clientreg's copy useless,
and the client, with whatever redirect URIs that PUT gave it, keeps working. Taking the 401 for "gone"
would hide exactly that, so the old client stays in the record as retiring, a Warning names it (its
client ID, never a credential), and the DELETE is tried again later with a growing delay: a person must
look at the AS. A 404 (or 410) still means gone.

One 401 is not ambiguous: the answer to a DELETE sent again after an earlier DELETE whose answer never
arrived (the process was killed, the connection dropped). Servers that follow RFC 7592 §2 answer 401 for
a deleted client's token, so that 401 is most likely the earlier DELETE's work. To tell the two apart, a
retiring client is marked ``delete_pending`` (and saved) before each DELETE and unmarked when an answer
is recorded; the DELETE itself is sent once (no in-place retry whose 401 would answer for its predecessor).
The residual risk, stated: a 401 after a DELETE that failed without an answer (a crash, a dropped or
refused connection) is taken for that DELETE's work, so someone who used the token just before a DELETE
that then failed goes unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from .errors import CredentialsRejected
from .reasons import Reason
from .record import RegistrationRecord, RetiringClient

#: Event and condition reason.
DELETE_REFUSED = Reason.RETIRING_DELETE_REFUSED
#: Delay before the first retry; it doubles with every refusal up to MAX_RETRY.
FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=24)


class RetiringDeleteRefused(CredentialsRejected):
    """Deleting a resource whose old client the AS refuses to delete (401): it may still exist."""

    reason = DELETE_REFUSED


def retry_delay(refusals: int) -> timedelta:
    """How long after its ``refusals``-th refusal a DELETE is tried again (5 min, 10 min, … 24 h)."""
    return min(FIRST_RETRY * (1 << min(max(refusals - 1, 0), 16)), MAX_RETRY)


#: The GracePeriodOver message when a retried DELETE meets the 401 its lost predecessor caused.
INTERRUPTED = ("old client {client_id} was deleted by an earlier DELETE whose answer was lost (the AS no longer "
               "accepts its token)")


def mark_sending(record: RegistrationRecord, old: RetiringClient, save: Callable[[RegistrationRecord], None]
                 ) -> bool:
    """Note (durably) that a DELETE of ``old`` is about to be sent. True when an earlier DELETE was sent and
    never answered: a 401 now is that DELETE's doing."""
    if old.delete_pending:
        return True
    old.delete_pending = True
    save(record)
    return False


def note_refusal(old: RetiringClient, now: datetime) -> None:
    """Count a refused DELETE of ``old`` and schedule the next try."""
    old.delete_pending = False
    old.delete_refusals += 1
    old.delete_after = now + retry_delay(old.delete_refusals)


def refusal_message(old: RetiringClient, *, deleting: bool = False) -> str:
    """What happened and what to do; names the client, never its token."""
    then = ("Retrying; deletionPolicy: Orphan lets the resource go without it" if deleting
            else f"Trying again at {old.delete_after.isoformat()} (refusal {old.delete_refusals})")
    return (f"the AS rejected the registration access token when deleting old client {old.client_id} (RFC 7592 "
            "§2: 401). Either it was deleted already, or someone else used the token (a PUT rotates it) and the "
            f"client still works with whatever they set: check it at the AS and delete it there if it exists. {then}")


def standing(record: RegistrationRecord | None) -> tuple[str, str] | None:
    """(reason, message) while any retiring client of ``record`` could not be deleted; None otherwise."""
    refused = [old.client_id for old in (record.retiring if record else []) if old.delete_refusals]
    if not refused:
        return None
    return DELETE_REFUSED, (f"the AS refused to delete old client(s) {', '.join(refused)} (401): they may still "
                            "exist; check them at the AS. The DELETE is retried")
