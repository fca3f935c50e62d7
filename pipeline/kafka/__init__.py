"""Kafka plumbing: client configuration (:mod:`.config`), topic administration
(:mod:`.admin`) and the emitter SDK (:mod:`.emitter`).

Importing this package pulls in nothing but kafka-python and pydantic, so an
emit-only service can use it without the worker extra.
"""
