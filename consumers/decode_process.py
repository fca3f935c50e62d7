"""The worker's decode process: where the next batch is decoded while the current one is stored.

Decoding is the worker's largest CPU cost per event (JSON, validation, the
Arrow columns). In a process of its own it has its own GIL, so it runs beside
the worker's Kafka reads, aggregation and ClickHouse writes instead of taking
turns with them. What crosses is cheap to pickle: plain lists in
(:func:`~consumers.decode.portable_messages`), Arrow and plain lists out
(:meth:`~consumers.decode.DecodedBatch.portable`). This module imports
nothing heavier than :mod:`consumers.decode`, because the decode process
imports it to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import signal
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from consumers.allocators import lean_allocators
from consumers.decode import DecodedBatch, decode_portable, portable_messages
from consumers.records import Message
from pipeline.pii import Pseudonymizer

PR_SET_PDEATHSIG = 1


def decoder(in_process: bool) -> Executor:
    """A process of its own, started now so its imports overlap the worker's start; or a thread."""
    if not in_process:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
    spawn = multiprocessing.get_context("spawn")  # never fork: the worker runs threads and an embedded engine
    executor = ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=_start_decode_process)
    executor.submit(int)  # start it now, not at the first batch
    return executor


async def decode(
    executor: Executor, messages: list[Message], max_event_bytes: int, topic: str, pii: Pseudonymizer | None = None
) -> DecodedBatch:
    """Decode a batch on ``executor``; the answer has the messages attached again."""
    loop = asyncio.get_running_loop()
    portable = portable_messages(messages)
    decoded = await loop.run_in_executor(executor, decode_portable, portable, max_event_bytes, topic, pii)
    return decoded.attach(messages)


def _start_decode_process() -> None:
    """In the decode process: end when the worker ends, even by SIGKILL (Linux; elsewhere it ends
    when the worker's pipe closes). Ctrl-C goes to the worker, which stops this process itself.
    Freed batch memory goes back to the OS (:mod:`consumers.allocators`)."""
    lean_allocators()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
