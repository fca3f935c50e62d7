"""kafka-python's transports keep the bytes that arrive just before the broker closes (see pipeline.kafka.eof_fix)."""

from __future__ import annotations

import socket

from kafka.net.transport import KafkaTCPTransport

from pipeline.kafka import eof_fix
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import KafkaSettings


def test_every_kafka_python_config_installs_the_fix_on_both_transports():
    kafka_python_config(KafkaSettings())
    assert eof_fix.installed()  # fails if a kafka-python upgrade moved _sock_recv: re-check the bug, then the fix


def test_a_refusal_followed_by_a_close_is_read_and_the_close_is_seen_next():
    """The broker's last answer and its close, read in one go: the answer first, then the disconnect."""
    eof_fix.install()
    ours, broker = socket.socketpair()
    try:
        ours.setblocking(False)
        broker.sendall(b"refusal")
        broker.close()
        transport = object.__new__(KafkaTCPTransport)
        transport._sock, transport._closed = ours, False
        data, err = transport._sock_recv()
        assert (data, err) == (b"refusal", None)
        data, err = transport._sock_recv()
        assert data == b"" and "socket disconnected" in str(err)
    finally:
        ours.close()


def test_installing_twice_wraps_once():
    eof_fix.install()
    wrapped = KafkaTCPTransport.__dict__["_sock_recv"]
    eof_fix.install()
    assert KafkaTCPTransport.__dict__["_sock_recv"] is wrapped
