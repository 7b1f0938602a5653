"""Where the operator's CPU goes, from a py-spy profile of it (raw "folded" stacks).

    py-spy record --gil --nonblocking -r 100 -p <operator pid> -f raw -o operator.folded
    python bench/pyspy_summary.py operator.folded [TOP]

``--gil`` keeps only samples of the thread holding the GIL: CPU the interpreter spends, not threads
waiting on sockets. Each sample is put under the outermost frame that tells what it serves (kopf's
machinery, a reconcile, the controller of this repository's own runtime, the documents feed, the Lease),
then the TOP functions by own samples are printed. docs/performance.md quotes the shares.
"""

from __future__ import annotations

import sys
from collections import Counter

#: (share name, a path fragment of the outermost frame that marks it), first match wins.
ENTRIES = (
    ("kopf", "kopf/"),
    ("reconcile", "clientreg_operator/reconciler.py"),
    ("heal/reconcile scheduling (kopf era)", "clientreg_operator/runtime.py"),
    ("controller", "clientreg_operator/controller.py"),
    ("watches", "clientreg_operator/informer.py"),
    ("documents feed", "clientreg_operator/docfeed.py"),
    ("server status", "clientreg_operator/servers.py"),
    ("lease", "clientreg_operator/leader.py"),
)


def summarize(path: str, top: int) -> None:
    shares: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path) as folded:
        for line in folded:
            stack, _, count = line.rstrip().rpartition(" ")
            samples = int(count)
            total += samples
            frames = stack.split(";")
            entry = next((name for frame in frames for name, fragment in ENTRIES if fragment in frame), "other")
            shares[entry] += samples
            own[frames[-1][:100]] += samples
    print(f"{total} samples")
    for name, samples in shares.most_common():
        print(f"{100 * samples / max(total, 1):5.1f} %  {name}")
    print()
    for frame, samples in own.most_common(top):
        print(f"{100 * samples / max(total, 1):5.1f} %  {frame}")


if __name__ == "__main__":
    summarize(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15)
