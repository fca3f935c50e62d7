"""Delete what a bench run created in Kafka: its topics and the frameworks' internal ones.

The run's topics share the prefix ``<prefix>.bench-<run>``; Faust names its
changelog and leader topics after the app id (which starts with that prefix),
quixstreams its changelogs after the consumer group (which holds the run id).
"""

from __future__ import annotations

from kafka import KafkaAdminClient

from pipeline.kafka.admin import delete_topics
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings


def delete_run_topics(settings: Settings, run: str) -> None:
    delete_topics(settings)
    admin = KafkaAdminClient(client_id="pulse-bench", **kafka_python_config(settings))
    try:
        leftovers = [t for t in admin.list_topics() if f"bench-{run}" in t]
        if leftovers:
            admin.delete_topics(leftovers)
    finally:
        admin.close()
