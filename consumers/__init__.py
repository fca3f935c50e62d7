"""The Faust worker: the ingest path from Kafka to ClickHouse, leader timers and pages.

The ingest path, in the order a batch takes it:

* :mod:`consumers.faust_adapter` - the one module that touches Faust's internals: records of the
  events and releases topics handed over per fetch, offsets acked per batch;
* :mod:`consumers.batching` - the buffer between the fetch loop and the loops (chunks, batches);
* :mod:`consumers.loop` - the chain fetch -> decode -> aggregate -> write -> commit, and the one
  durable-step runner that decides whether a batch is acked;
* :mod:`consumers.records` - messages, event positions, dead letters;
* :mod:`consumers.decode` and :mod:`consumers.decode_process` - stage one (decode, validate) and the
  process it runs in, one batch ahead;
* :mod:`consumers.aggregate` with :mod:`consumers.dedup`, :mod:`consumers.rows` and
  :mod:`consumers.partials` - stage two: dedup and watermarks, raw rows, minute partials;
* :mod:`consumers.ingest` - the durable step of one batch, its steps in order;
  :mod:`consumers.sink` and :mod:`consumers.failures` - ClickHouse writes and what their failures mean.

:mod:`consumers.app` wires them into the Faust app and runs the worker; :mod:`consumers.extensions`
is what other rooms hand it (timers, pages); :mod:`consumers.allocators` keeps its memory lean.
"""
