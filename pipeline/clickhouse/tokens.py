"""``insert_deduplication_token``: the name of an insert, from the Kafka messages it was made of.

A worker retries an insert whose answer it never saw (a timeout, a dropped
connection): the first attempt may have landed. With a token, ClickHouse itself
drops the repeat - on a replicated table (``ReplicatedMergeTree`` keeps the
tokens of its last ``replicated_deduplication_window`` inserts in Keeper) and on
a non-replicated one whose ``non_replicated_deduplication_window`` is set. It
does not wait for a merge or a ``FINAL`` read, and a repeat that Distributed
forwards to the same shard (a deterministic sharding key) is dropped there too.

The token is the topic and, per partition, the first and last offset of the
batch: the same messages give the same token in any process, so a batch
replayed by the partition's next owner after a crash is recognised as well. A
table with no dedup window (the single-node layout) ignores the setting.
"""

from __future__ import annotations

from collections.abc import Iterable

OffsetRanges = dict[int, tuple[int, int]]  # partition -> (first offset, last offset)


def offset_ranges(positions: Iterable[tuple[int, int]]) -> OffsetRanges:
    """Per partition, the smallest and largest offset among ``(partition, offset)`` pairs."""
    ranges: OffsetRanges = {}
    for partition, offset in positions:
        seen = ranges.get(partition)
        ranges[partition] = (offset, offset) if seen is None else (min(seen[0], offset), max(seen[1], offset))
    return ranges


def dedup_token(topic: str, ranges: OffsetRanges) -> str:
    """``topic|partition:first-last|...``, partitions in order: deterministic for the same messages."""
    if not ranges:
        raise ValueError("a dedup token names at least one partition's offsets")
    return topic + "".join(f"|{p}:{first}-{last}" for p, (first, last) in sorted(ranges.items()))


def part_token(token: str, what: str) -> str:
    """The token of one part of an insert (a slice of refused rows, one term's partials): its own name."""
    return f"{token}|{what}"
