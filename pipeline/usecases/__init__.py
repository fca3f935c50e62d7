"""The use cases: what each ``pulse`` command does, composed from the core and the rooms.

The CLI (:mod:`pipeline.cli`) parses arguments, calls one function here and
formats what it returns; everything that opens the store, runs SQL or wires
rooms together (the worker with its leader timers and pages, the evaluation
loop, the read API and its client, the demo's findings) lives here.
"""
