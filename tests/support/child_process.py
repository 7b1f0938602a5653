"""What the tests read of a controller they run as a child process: its log and its memory."""

from __future__ import annotations

import subprocess
from pathlib import Path


class LoggedChild:
    """A child process (``proc``, once started) whose output goes to ``log_path``."""

    log_path: Path
    proc: subprocess.Popen[bytes] | None

    def rss_bytes(self) -> tuple[int, int]:
        """(current, peak) resident set size, from /proc."""
        assert self.proc is not None
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
