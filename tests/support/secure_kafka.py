"""A Kafka broker whose only client listener is SASL_SSL (SCRAM-SHA-512), for the security tests.

Driven through ``deploy/local/kafka.sh secure``: the script makes a CA and the
broker's PKCS12 keystore and truststore with the JDK's ``keytool``, creates the
SCRAM users when it formats the storage (``kafka-storage format --add-scram``,
KRaft's way: no ZooKeeper, no running broker needed), and starts one KRaft node
on 127.0.0.1. Each :class:`SecureKafka` gets its own folder (fresh keys and
users) and the script's port, 19192 (controller 19193), beside the session's
broker (9092) and the fault tests' cluster (19092-19097). :meth:`start` first
stops a broker an aborted run left on that port (the script finds it by its
pid file, named by port), as the cluster helper does; if something else holds
the port, a free pair is used instead. Starting is bounded (the script waits
60 s at most); :meth:`stop` ends the JVM.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from support.net import free_port

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"
MECHANISM = "SCRAM-SHA-512"


DEFAULT_PORT = 19192


def _pair_free(port: int) -> bool:
    for p in (port, port + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _free_port_pair() -> int:
    """A port p with p and p+1 free (the SASL_SSL listener on p, the KRaft controller on p+1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


class SecureKafka:
    def __init__(self, folder: Path, user: str = "pulse", port: int | None = None) -> None:
        self.folder = folder
        self.user = user
        self.port = port or DEFAULT_PORT
        self.info: dict[str, str] = {}
        self.started_in_s = 0.0

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PULSE_KAFKA_SECURE_PORT": str(self.port),
            "PULSE_KAFKA_SECURE_DATA": str(self.folder),
            "PULSE_KAFKA_SECURE_USER": self.user,
        }

    def run(self, action: str, timeout_s: float = 120) -> str:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), "secure", action],
            env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh secure {action} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> SecureKafka:
        started = time.monotonic()
        self.run("stop")  # a broker an aborted run left on this port, whatever its folder
        if not _pair_free(self.port):
            self.port = _free_port_pair()
        out = self.run("start")
        self.started_in_s = time.monotonic() - started
        self.info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return self

    def stop(self) -> None:
        self.run("stop")

    @property
    def bootstrap(self) -> str:
        return self.info["bootstrap"]

    @property
    def cafile(self) -> Path:
        return Path(self.info["cafile"])

    @property
    def password(self) -> str:
        return Path(self.info["password_file"]).read_text().strip()

    def client_settings(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        """The Kafka settings of a client of this broker (the real user and password unless told otherwise)."""
        return {
            "kafka_bootstrap": self.bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": MECHANISM,
            "kafka_sasl_username": user or self.user,
            "kafka_sasl_password": SecretStr(self.password if password is None else password),
            "kafka_ssl_cafile": self.cafile,
        }
