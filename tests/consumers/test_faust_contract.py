"""The contract with faust-streaming: every non-public behaviour ``consumers/faust_adapter.py`` relies on.

The adapter copies parts of Faust's consumer (``getmany``, ``Consumer.ack``, the
drain loop's offset bookkeeping) and reads and writes its private attributes.
Each test pins one of those behaviours against the installed faust-streaming and
fails with a message naming it, so an upgrade that changes one says which part
of the adapter to re-check - instead of a worker that silently commits wrong.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import faust
import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types import tuples as faust_tuples
from mode.utils import futures as mode_futures

from consumers.batching import Batches
from consumers.faust_adapter import BatchingConsumer, BatchingTransport, PulseApp

TOPIC = "contract.events"
UPSTREAM = faust_aiokafka.Consumer


@pytest.fixture(scope="module")
def consumer() -> BatchingConsumer:
    """Our consumer as the app builds it (not started: nothing connects to a broker)."""
    app = PulseApp("contract", batches=(Batches({TOPIC}, 100),), broker="kafka://127.0.0.1:1")
    c = app.consumer
    assert isinstance(c, BatchingConsumer), "App._new_transport: the app must build our transport and consumer"
    return c


def attributes(fn: Callable[..., object]) -> set[str]:
    """Every attribute name a function's source reads or writes (``x.name``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def params(fn: Callable[..., object]) -> list[str]:
    return list(inspect.signature(fn).parameters)


# --- the consumer under the app -------------------------------------------------------------------


def test_app_new_transport_is_the_hook_that_builds_the_transport():
    assert hasattr(faust.App, "_new_transport"), "App._new_transport: gone; the adapter overrides it"
    assert params(faust.App._new_transport) == ["self"], "App._new_transport: its signature changed"
    assert "broker_consumer" in attributes(faust.App._new_transport), (
        "App._new_transport: no longer builds the transport from conf.broker_consumer"
    )


def test_transport_instantiates_its_consumer_class_attribute():
    assert issubclass(BatchingTransport, faust_aiokafka.Transport)
    assert faust_aiokafka.Transport.Consumer is UPSTREAM, "Transport.Consumer: no longer the aiokafka Consumer"
    create = faust_aiokafka.Transport.create_consumer
    assert "Consumer" in attributes(create), "Transport.create_consumer: no longer instantiates self.Consumer"


# --- getmany ---------------------------------------------------------------------------------------


def test_getmany_is_an_async_generator_taking_a_timeout():
    assert inspect.isasyncgenfunction(UPSTREAM.getmany), "Consumer.getmany: no longer an async generator"
    assert params(UPSTREAM.getmany) == ["self", "timeout"], "Consumer.getmany: its signature changed"
    assert inspect.isasyncgenfunction(BatchingConsumer.getmany)


def test_getmany_has_the_structure_the_adapter_copied():
    """Our getmany and _iterate use exactly what upstream's getmany uses (plus the Batches hand-over)."""
    upstream = attributes(UPSTREAM.getmany) - {"dev", "log"}  # its debug logging
    expected = {"_wait_next_records", "app", "consumer_generation_id", "should_stop", "scheduler", "iterate",
                "_to_message", "flow_active", "_buffered_partitions", "highwater", "monitor",
                "track_tp_end_offset", "perform_seek", "warning"}  # fmt: skip
    assert upstream == expected, f"Consumer.getmany: changed (now uses {sorted(upstream ^ expected)}); re-copy it"
    ours = attributes(BatchingConsumer.getmany) | attributes(BatchingConsumer._iterate)
    assert expected <= ours | {"dev"}, f"BatchingConsumer: lost part of getmany: {sorted(expected - ours)}"


def test_wait_next_records_returns_records_and_active_partitions():
    fn = UPSTREAM._wait_next_records
    assert inspect.iscoroutinefunction(fn), "Consumer._wait_next_records: no longer a coroutine"
    assert params(fn) == ["self", "timeout"], "Consumer._wait_next_records: its signature changed"
    hint = inspect.signature(fn).return_annotation
    want = "Tuple[typing.Optional[typing.Mapping[faust.types.tuples.TP, typing.List[typing.Any]]], typing.Optional[typing.Set[faust.types.tuples.TP]]]"  # noqa: E501
    assert want in str(hint), f"Consumer._wait_next_records: no longer returns (records, active_partitions): {hint}"


def test_a_fetch_in_progress_waits_out_a_reassignment():
    """aiokafka returns no records of the old assignment once a rebalance began: it waits for the new one."""
    from aiokafka.consumer.fetcher import Fetcher

    source = inspect.getsource(Fetcher.fetched_records)
    assert "reassignment_in_progress" in source and "wait_for_assignment" in source, (
        "Fetcher.fetched_records: no longer waits for the new assignment; re-check the epoch in getmany"
    )


def test_the_flow_resumes_only_after_the_seek_to_committed_offsets():
    """Stale chunks are dropped because Faust seeks back to the committed offsets before any new fetch counts."""
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery._resume_streams)
    assert "perform_seek" in source and "resume_flow" in source, "Recovery._resume_streams: changed"
    assert source.index("perform_seek") < source.index("resume_flow"), (
        "Recovery._resume_streams: resumes the flow before seeking; dropped stale chunks would be lost"
    )


def test_to_message_takes_a_tp_and_a_record():
    assert params(UPSTREAM._to_message) == ["self", "tp", "record"], "Consumer._to_message: its signature changed"


def test_buffered_partitions_is_a_set(consumer):
    assert isinstance(consumer._buffered_partitions, set), "Consumer._buffered_partitions: no longer a set"


# --- the drain loop's offset bookkeeping ---------------------------------------------------------------


def test_read_offset_maps_each_partition_to_its_last_offset_or_none(consumer):
    read = consumer._read_offset
    assert isinstance(read, defaultdict), "Consumer._read_offset: no longer a defaultdict"
    assert read[TP(TOPIC, 99)] is None, "Consumer._read_offset: an unread partition is no longer None"
    drain = attributes(UPSTREAM._drain_messages)
    assert {"_read_offset", "_add_gap"} <= drain, "Consumer._drain_messages: no longer keeps _read_offset/_add_gap"


def test_add_gap_is_a_coroutine_of_a_partition_and_an_offset_range():
    fn = UPSTREAM._add_gap
    assert inspect.iscoroutinefunction(fn), "Consumer._add_gap: no longer a coroutine"
    assert params(fn) == ["self", "tp", "offset_from", "offset_to"], "Consumer._add_gap: its signature changed"


# --- ack -------------------------------------------------------------------------------------------------


def test_ack_lock_is_a_reentrant_lock():
    lock = faust_tuples.ack_lock
    assert isinstance(lock, type(threading.RLock())), "faust.types.tuples.ack_lock: no longer an RLock"
    assert "ack_lock" in inspect.getsource(UPSTREAM.ack), "Consumer.ack: no longer runs under ack_lock"


def test_ack_bookkeeping_is_what_the_adapter_copied():
    used = attributes(UPSTREAM.ack)
    expected = {"_committed_offset", "_acked_index", "_acked", "_n_acked", "_waiting_for_ack", "acks_enabled_for"}
    assert expected <= used, f"Consumer.ack: no longer uses {sorted(expected - used)}; re-copy ack_offsets"
    ours = attributes(BatchingConsumer.ack_offsets)
    assert expected <= ours, f"BatchingConsumer.ack_offsets: lost {sorted(expected - ours)}"
    assert "notify" in inspect.getsource(UPSTREAM.ack), "Consumer.ack: no longer wakes _waiting_for_ack by notify"


def test_ack_state_has_the_expected_shapes(consumer):
    tp = TP(TOPIC, 98)
    assert isinstance(consumer._acked, defaultdict) and consumer._acked[tp] == [], "Consumer._acked: TP -> list"
    assert isinstance(consumer._acked_index, defaultdict) and consumer._acked_index[tp] == set(), (
        "Consumer._acked_index: TP -> set"
    )
    assert consumer._committed_offset[tp] is None, "Consumer._committed_offset: TP -> offset or None"
    assert isinstance(consumer._n_acked, int), "Consumer._n_acked: no longer an int"
    assert consumer._waiting_for_ack is None, "Consumer._waiting_for_ack: no longer None while nobody waits"


def test_notify_wakes_a_waiting_future():
    assert params(mode_futures.notify) == ["fut", "result"], "mode.utils.futures.notify: its signature changed"

    async def go() -> object:
        fut = asyncio.get_running_loop().create_future()
        mode_futures.notify(fut)
        mode_futures.notify(None)  # nobody waiting: a no-op
        return fut.done()

    assert asyncio.run(go()), "mode.utils.futures.notify: no longer completes the future"


def test_commit_reads_the_acks_we_write():
    used = attributes(UPSTREAM._new_offset)
    assert "_acked" in used, "Consumer._new_offset: commits no longer come from _acked"


def test_ack_offsets_records_fresh_offsets_once(consumer):
    """Our per-batch ack does Faust's per-message bookkeeping (topic subscribed, so acks are enabled)."""
    app = consumer.app
    app.subscribe(app.topic(TOPIC, value_type=bytes, key_type=bytes))
    tp = TP(TOPIC, 7)
    asyncio.run(app.topics._update_indices())  # what the consumer does when it subscribes
    assert app.topics.acks_enabled_for(TOPIC), "app.topics.add: an acking topic no longer enables acks"
    before = consumer._n_acked
    assert consumer.ack_offsets(tp, [3, 4, 5]) == 3
    assert consumer.ack_offsets(tp, [5, 6]) == 1
    assert consumer._acked[tp] == [3, 4, 5, 6] and consumer._acked_index[tp] == {3, 4, 5, 6}
    assert consumer._n_acked == before + 4


def test_the_adapter_docstring_names_every_private_behaviour():
    doc = inspect.getmodule(BatchingConsumer).__doc__ or ""
    source = Path(inspect.getsourcefile(BatchingConsumer) or "").read_text()
    tree = ast.parse(source)
    privates = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr[:1] == "_" != n.attr[1:2]}
    missing = sorted(p for p in privates if p not in doc and p not in ("_chunk", "_iterate"))  # ours
    assert missing == [], f"consumers/faust_adapter.py uses private names its docstring does not list: {missing}"
    assert faust_consumer.Consumer in UPSTREAM.__mro__
