"""Per-partition memory of a worker: which event ids it has seen where, and how far event time has come.

* :class:`SeenIds` - an ``event_id`` is counted at its first position in its
  partition only, so a producer retry that wrote it twice counts once, and a
  replay of that first delivery is counted again (it rewrites the same keys).
* :class:`Watermarks` - per partition, the max event time seen; an event older
  than it minus the allowed lateness is *late* (still counted in its own
  minute, and tallied in ``late_events``).

Partitions never interact: a partition's memory is dropped when it is revoked
and warmed again from ClickHouse by its next owner
(:meth:`consumers.sink.ClickHouseSink.take_over`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice


class SeenIds:
    """Which event_ids were seen at which position, per partition, bounded in size.

    An (position, id) pair is *first* when no earlier position of the partition
    carried the same id - whether this is a first delivery or a replay of that
    first delivery - so the answer for a message does not depend on how often
    it was processed. :meth:`first_many` answers a whole batch of one partition
    in one pass (dict look-ups and updates in C); the oldest ids are forgotten
    past ``capacity`` after each call, from the partition that remembers the most.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._size = 0
        self._seen: dict[int, dict[int, int]] = {}  # partition -> {event_id: first position}

    def __len__(self) -> int:
        return self._size

    def first_many(self, partition: int, positions: Sequence[int], ids: Sequence[int]) -> list[bool]:
        """Whether each (position, id), in order, is first: the same answers as asking one pair at a time."""
        seen = self._seen.setdefault(partition, {})
        before = len(seen)
        if len(set(ids)) == len(ids):  # the usual batch: every answer is independent of the others
            prev = list(map(seen.get, ids))
            answers = [p is None or p >= pos for p, pos in zip(prev, positions, strict=True)]
            seen.update([(i, pos) for i, pos, p in zip(ids, positions, prev, strict=True) if p is None or p > pos])
        else:  # an id repeats inside the batch: the first occurrence decides the later ones
            answers = [_first_in(seen, pos, i) for pos, i in zip(positions, ids, strict=True)]
        self._size += len(seen) - before
        self._evict()
        return answers

    def _evict(self) -> None:
        excess = self._size - max(self.capacity, 0)
        while excess > 0:
            by_size = sorted(self._seen.values(), key=len, reverse=True)
            largest = by_size[0]
            runner_up = len(by_size[1]) if len(by_size) > 1 else 0
            k = min(excess, max(1, len(largest) - runner_up))
            for key in list(islice(largest, k)):
                del largest[key]
            self._size -= k
            excess -= k

    def forget(self, partition: int) -> None:
        """Drop a partition's ids (it was revoked; its next owner warms up from ClickHouse)."""
        self._size -= len(self._seen.pop(partition, {}))

    def remember(self, partition: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Warm up from (event_id, position) pairs already stored for ``partition``."""
        pairs = list(pairs)
        self.first_many(partition, [pos for _, pos in pairs], [i for i, _ in pairs])


def _first_in(seen: dict[int, int], position: int, event_id: int) -> bool:
    prev = seen.get(event_id)
    if prev is not None and prev < position:
        return False
    seen[event_id] = position
    return True


@dataclass
class Watermarks:
    """Per-partition max event time; an event older than it minus lateness is late."""

    allowed_lateness_s: float
    max_ts: dict[int, float] = field(default_factory=dict)
