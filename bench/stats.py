"""The harness's checker and statistics.

A sender numbers its messages 0, 1, 2, … per room and round. Every connection keeps a ``Tally``
of the numbers it received: a number seen twice is a duplicate, a number below one already
received is out of order, and a number never seen by the end of the round is lost. Latency is
measured per message, from its send to its arrival at the last member that received it.

A rate sweep is summed up by the highest rate kept up, and a system at rest by the CPU each of
its processes uses per second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Tally:
    """What one connection received of its room in one round."""

    seen: bytearray = field(default_factory=bytearray)
    highest: int = -1
    received: int = 0
    duplicated: int = 0
    disordered: int = 0

    def record(self, n: int) -> bool:
        """Count message ``n``; True when it is the first copy here."""
        if n < 0:
            raise ValueError("message numbers start at 0")
        if n >= len(self.seen):
            self.seen.extend(bytes(n + 1 - len(self.seen)))
        if self.seen[n]:
            self.duplicated += 1
            return False
        self.seen[n] = 1
        self.received += 1
        if n < self.highest:
            self.disordered += 1
        else:
            self.highest = n
        return True

    def lost(self, sent: int) -> int:
        """How many of messages 0 … sent - 1 never arrived."""
        return sent - sum(self.seen[:sent])


@dataclass(slots=True)
class Verdict:
    """Lost, duplicated and out-of-order counts over many connections."""

    connections: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    disordered: int = 0

    def add(self, tally: Tally, sent: int) -> None:
        self.connections += 1
        self.received += tally.received
        self.lost += tally.lost(sent)
        self.duplicated += tally.duplicated
        self.disordered += tally.disordered

    def merge(self, other: Verdict) -> None:
        self.connections += other.connections
        self.received += other.received
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.disordered += other.disordered

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.disordered == 0


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0 … 100) of sorted or unsorted values; NaN for
    none."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q is a percentage")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def merge_latest(parts: Iterable[dict[tuple[int, int], float]]) -> dict[tuple[int, int], float]:
    """Per message (room, n): the latest arrival over every part (client process)."""
    latest: dict[tuple[int, int], float] = {}
    for part in parts:
        for key, at in part.items():
            if at > latest.get(key, 0.0):
                latest[key] = at
    return latest


def latencies(
    sent_at: dict[tuple[int, int], float], latest: dict[tuple[int, int], float]
) -> list[float]:
    """Seconds from each message's send to its last arrival, for messages that arrived."""
    return [latest[key] - at for key, at in sent_at.items() if key in latest]


def highest_kept_up(steps: Iterable[tuple[float, bool]]) -> float | None:
    """The highest offered rate kept up, from (offered rate, kept up) steps in any order: the
    walk goes up the rates and ends at the first one not kept up (a higher rate that happened
    to pass after a failure does not count). None when the lowest rate already failed."""
    best = None
    for rate, kept in sorted(steps):
        if not kept:
            break
        best = rate
    return best


def idle_costs(
    before: Mapping[int, float],
    after: Mapping[int, float],
    seconds: float,
    roles: Mapping[int, str],
) -> list[tuple[str, int, float]]:
    """(role, pid, milliseconds of CPU per second) of each process over ``seconds`` at rest,
    from two readings of CPU seconds per process; a process missing from either reading (it
    started or ended in between) is left out. Sorted by role, then pid."""
    if seconds <= 0:
        raise ValueError("an idle window has a length")
    costs = [
        (roles.get(pid, "other"), pid, max(0.0, after[pid] - before[pid]) * 1000 / seconds)
        for pid in after
        if pid in before
    ]
    return sorted(costs)
