"""Counting attacks: each one tried is recorded, and counted as refused only when every assertion about it held.

``with TALLY.attack("traversal", "serverRef.name", "../../x"): ...`` — an exception inside the block (a
failed assertion, an unexpected API answer) counts the attack as *not refused* and propagates. The e2e
conftest prints the tally at the end of the session (docs/reliability.md quotes it).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    not_refused: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def attack(self, family: str, *detail: str) -> Iterator[None]:
        with self._lock:
            self.tried[family] += 1
        try:
            yield
        except BaseException:
            with self._lock:
                self.not_refused.append(" / ".join((family, *detail)))
            raise
        with self._lock:
            self.refused[family] += 1

    def lines(self) -> list[str]:
        if not self.tried:
            return []
        out = [f"{'attack family':<28} {'tried':>6} {'refused':>8}"]
        for family in sorted(self.tried):
            out.append(f"{family:<28} {self.tried[family]:>6} {self.refused[family]:>8}")
        out.append(f"{'total':<28} {sum(self.tried.values()):>6} {sum(self.refused.values()):>8}")
        out += [f"NOT REFUSED: {what}" for what in self.not_refused]
        return out


#: One per test session (the e2e conftest prints it).
TALLY = Tally()
