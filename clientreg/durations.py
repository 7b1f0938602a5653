"""Go-style durations ("72h", "1h30m", "90s"), the way Kubernetes and cert-manager users write them."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_HOURS = 876_000
_MAX_SECONDS = _MAX_HOURS * 3600.0
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration. Days are deliberately not a unit (Go has none): write 720h, not 30d."""
    s = text.strip()
    if s in {"0", "0s"}:
        return timedelta(0)
    if not s or _PART.sub("", s) != "":
        raise ValueError(f"{text!r} is not a duration: use Go syntax such as 10m, 72h or 1h30m (units ns us ms s m h)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(s))
    if not seconds <= _MAX_SECONDS:
        # Past a century nothing is meant, and date arithmetic would overflow (OverflowError, not ValueError).
        raise ValueError(f"{text[:40]!r} is longer than {_MAX_HOURS}h (a century), the longest duration accepted")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v)
    return out or "0s"
