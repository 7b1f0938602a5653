"""``status NAME``: an OAuthClient as a person reads it, the way ``cmctl status certificate`` shows a Certificate.

Pure rendering of what the API server holds: the OAuthClient's status (conditions, client ID, Secret name,
server, rotation times, retiring clients) and its last Events. It never reads a Secret, so it cannot print a
secret value; every string is shown with control characters escaped (a condition message quotes what a
tenant's AS answered, and a terminal must not interpret it).
"""

from __future__ import annotations

from typing import Any

from clientreg_kube.conventions import ROTATE_ANNOTATION

#: The conditions shown, in this order (kstatus: Ready, plus Flux's Reconciling/Stalled, plus Synced).
CONDITIONS = ("Ready", "Synced", "Reconciling", "Stalled")


def printable(value: object) -> str:
    """``value`` as one line a terminal shows as text: control characters (escape sequences, newlines) escaped."""
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")


def last_events(events: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recent events, oldest first (the order ``kubectl describe`` shows)."""
    return sorted(events, key=_event_time)[-limit:] if limit > 0 else []


def render(body: dict[str, Any], events: list[dict[str, Any]], *, limit: int = 10) -> str:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    lines = [f"Name:              {printable(meta.get('namespace', ''))}/{printable(meta.get('name', ''))}"]
    server = status.get("server")
    if not server:
        ref = spec.get("serverRef") or {}
        server = f"{ref.get('kind', 'AuthorizationServer')}/{ref.get('name', '')}" if ref else ""
    lines.append(f"Server:            {printable(server or '(unknown)')}")
    lines.append(f"Client ID:         {printable(status.get('clientId') or '(not registered)')}")
    lines.append(f"Secret:            {printable(status.get('secretName') or spec.get('secretName') or '(none)')}")
    for label, key in (("Registered at:", "registeredAt"), ("Secret expires:", "secretExpiresAt"),
                       ("Last rotation:", "lastRotation"), ("Next rotation:", "nextRotation")):
        if status.get(key):
            lines.append(f"{label:<19}{printable(status[key])}")
    requested = (meta.get("annotations") or {}).get(ROTATE_ANNOTATION)
    if requested:
        done = requested == status.get("lastRotationRequest")
        lines.append(f"Rotation request:  {printable(requested)} ({'done' if done else 'pending'})")
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and generation != observed:
        lines.append(f"Observed:          generation {printable(observed)} of {printable(generation)} (catching up)")

    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    lines.append("Conditions:")
    if not conditions:
        lines.append("  (none yet: the operator has not reconciled this OAuthClient)")
    for kind in (*CONDITIONS, *sorted(k for k in conditions if k not in CONDITIONS and isinstance(k, str))):
        condition = conditions.get(kind)
        if condition is None:
            continue
        since = f" since {printable(condition['lastTransitionTime'])}" if condition.get("lastTransitionTime") else ""
        lines.append(f"  {printable(kind)}: {printable(condition.get('status', 'Unknown'))} "
                     f"({printable(condition.get('reason', ''))}){since}")
        if condition.get("message"):
            lines.append(f"    {printable(condition['message'])}")

    retiring = [r for r in status.get("retiring") or [] if isinstance(r, dict)]
    lines.append("Retiring clients:" + ("" if retiring else " none"))
    lines.extend(f"  {printable(r.get('clientId', ''))}: deleted after {printable(r.get('deleteAfter', '?'))}"
                 for r in retiring)

    shown = last_events(events, limit)
    lines.append("Events:" + ("" if shown else " none"))
    for event in shown:
        count = event.get("count") or 1
        times = f" (x{count})" if isinstance(count, int) and count > 1 else ""
        lines.append(f"  {printable(_event_time(event))}  {printable(event.get('type', 'Normal')):<7}  "
                     f"{printable(event.get('reason', ''))}{times}: {printable(event.get('message', ''))}")
    return "\n".join(lines) + "\n"


__all__ = ["CONDITIONS", "last_events", "printable", "render"]
