"""A three-broker KRaft cluster on loopback for the fault tests, driven through ``deploy/local/kafka.sh cluster``.

Its ports (19092/19094/19096, controllers on +1; ``PULSE_KAFKA_CLUSTER_PORT``
moves them) and data folder are its own, so the session's single broker at
9092 keeps serving the other tests. :meth:`KafkaCluster.start` first stops a
cluster an aborted run left behind (the script finds it by its pid files,
which are named by port), then formats a fresh data folder.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"
NODES = 3


class KafkaCluster:
    def __init__(self, data: Path, base_port: int | None = None) -> None:
        self.base_port = base_port or int(os.environ.get("PULSE_KAFKA_CLUSTER_PORT", "19092"))
        self.env = {
            **os.environ,
            "PULSE_KAFKA_CLUSTER_PORT": str(self.base_port),
            "PULSE_KAFKA_CLUSTER_DATA": str(data),
            "PULSE_KAFKA_NODES": str(NODES),
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port(node)}" for node in range(1, NODES + 1))

    def port(self, node: int) -> int:
        return self.base_port + 2 * (node - 1)

    def run(self, *args: str, timeout_s: float = 180) -> str:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), "cluster", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh cluster {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> KafkaCluster:
        self.run("stop")  # a cluster left behind by an aborted run, whatever its data folder
        self.run("start")
        return self

    def stop(self) -> None:
        self.run("stop")

    def kill(self, node: int) -> None:
        """SIGKILL one broker, as a crash or the OOM killer would."""
        self.run("kill", str(node))

    def start_node(self, node: int) -> None:
        self.run("start", str(node))

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.bootstrap.split(","), client_id="test-cluster")

    def out_of_sync(self, topics: list[str]) -> list[tuple[str, int, list[int]]]:
        """(topic, partition, ISR) of every partition of ``topics`` whose ISR is not all its replicas."""
        admin = self.admin()
        try:
            lagging = []
            for topic in admin.describe_topics(topics):
                for p in topic["partitions"]:
                    if sorted(p["isr_nodes"]) != sorted(p["replica_nodes"]):
                        lagging.append((topic.get("name") or topic.get("topic"), p["partition_index"], p["isr_nodes"]))
            return lagging
        finally:
            admin.close()

    def wait_in_sync(self, topics: list[str], timeout_s: float = 60) -> float:
        """Seconds until every replica of ``topics`` is back in its ISR."""
        started = time.monotonic()
        lagging: list[tuple[str, int, list[int]]] = []
        while time.monotonic() - started < timeout_s:
            try:
                lagging = self.out_of_sync(topics)
            except Exception as exc:  # noqa: BLE001 - metadata may be unavailable for a moment; ask again
                lagging = [(type(exc).__name__, -1, [])]
            if not lagging:
                return time.monotonic() - started
            time.sleep(0.25)
        raise TimeoutError(f"replicas not back in sync after {timeout_s}s: {lagging[:5]}")

    def layout(self, topic: str) -> tuple[set[int], str | None]:
        """The replication factors of ``topic``'s partitions and its ``min.insync.replicas`` (None: the default)."""
        admin = self.admin()
        try:
            (described,) = admin.describe_topics([topic])
            factors = {len(p["replica_nodes"]) for p in described["partitions"]}
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
            min_isr = configs.get("min.insync.replicas")
            return factors, (min_isr["value"] if min_isr else None)
        finally:
            admin.close()
