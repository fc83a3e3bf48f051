"""How quick this host is right now: a fixed pure-Python loop, in seconds.

    python benchmarks/host_speed.py      → e.g. 4.37

The benchmarks share a host whose speed drifts by a factor of two from hour to hour. Run this
beside them (before and after) so that figures from different hours can be compared.
"""

from __future__ import annotations

import time


def loop_seconds(rounds: int = 30_000_000) -> float:
    started = time.perf_counter()
    total = 0
    for number in range(rounds):
        total += number * number % 7
    return time.perf_counter() - started


if __name__ == "__main__":
    print(round(loop_seconds(), 2))
