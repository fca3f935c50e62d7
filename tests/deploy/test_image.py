"""The application image: built by deploy/container/build.sh, it runs the CLI and a worker that stores events.

The worker runs in a container with ``--network host`` against the session's
broker, its embedded chDB store in a volume; events sent with the SDK from the
host are stored exactly (read from the volume once the container stopped), its
``/readyz`` answers from the host and the image's HEALTHCHECK passes.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest
from support.net import free_port
from support.truth import assert_totals_equal, emit_all, ground_truth, make_events, stored_totals

from pipeline.kafka.admin import consumer_lag, delete_topics, ensure_topics
from pipeline.settings import Settings

pytestmark = [pytest.mark.container, pytest.mark.integration]


def test_build_prints_the_image_reference_last_and_the_image_is_non_root(image):
    assert image.ref == os.environ.get("PULSE_IMAGE", "localhost/productpulse:dev")  # build.sh's last line
    inspected = json.loads(image.podman("image", "inspect", image.ref).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["pulse"]
    assert "PULSE_DATA_DIR=/data" in config["Env"]
    assert not any("ca-certificates.crt" in e or "proxy" in e.lower() for e in config["Env"])  # nothing baked in
    print(f"build.sh took {image.build_s:.1f}s")


def test_the_cli_runs_in_the_image(image):
    done = image.run("--help")
    assert done.returncode == 0 and "usage: pulse" in done.stdout, done.stderr
    assert "worker" in done.stdout and "collector" in done.stdout
    listed = image.run("metrics", "list")
    assert listed.returncode == 0, listed.stderr
    assert "active_users" in listed.stdout and "crash_free_sessions" in listed.stdout


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_worker_in_a_container_stores_events_sent_to_the_local_broker(image, kafka_bootstrap, tmp_path):
    tag = uuid.uuid4().hex[:10]
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)  # the image's user (uid 10001) writes its store there
    web_port = free_port()
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"image-{tag}", consumer_group=f"image_{tag}",
        topic_partitions=2, data_dir=volume, metrics_port=0, web_port=web_port, batch_within_s=0.5,
    )  # fmt: skip
    ensure_topics(settings)
    name = f"pulse-image-test-{tag}"
    env = ["-e", f"PULSE_KAFKA_BOOTSTRAP={kafka_bootstrap}", "-e", f"PULSE_TOPIC_PREFIX={settings.topic_prefix}"]
    env += ["-e", f"PULSE_CONSUMER_GROUP={settings.consumer_group}", "-e", "PULSE_TOPIC_PARTITIONS=2"]
    env += ["-e", f"PULSE_WEB_PORT={web_port}", "-e", "PULSE_METRICS_PORT=0", "-e", "PULSE_BATCH_WITHIN_S=0.5"]
    image.podman("run", "-d", "--name", name, "--network", "host", "-v", f"{volume}:/data", *env, image.ref, "worker")
    try:
        deadline = time.monotonic() + 120
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status, body = _get(f"http://127.0.0.1:{web_port}/readyz")
            except OSError:
                status = 0
            time.sleep(1)
        logs = image.podman("logs", name, check=False)
        assert status == 200, logs.stdout[-2000:] + logs.stderr[-3000:]

        events = make_events(3_000, ["checkout", "search"], seed=16)
        emit_all(settings, events)
        deadline = time.monotonic() + 120
        while consumer_lag(settings, settings.events_topic) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert consumer_lag(settings, settings.events_topic) == 0

        # The CLI in a second container, on the same volume: the store is the running worker's (locked), so
        # `pulse metrics query` asks the worker's read API - the path a user takes next to a worker.
        query = image.podman(
            "run", "--rm", "--network", "host", "-v", f"{volume}:/data", "-e", f"PULSE_WEB_PORT={web_port}",
            image.ref, "metrics", "query", "events", "--since", "30d", "--format", "json", check=False,
        )  # fmt: skip
        assert query.returncode == 0, query.stdout + query.stderr
        counted = {row["product"]: row["events"] for row in json.loads(query.stdout)}
        assert counted == {p: float(sum(e["product"] == p for e in events)) for p in ("checkout", "search")}

        health = image.podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        image.podman("stop", "-t", "30", name, check=False, timeout=60)
        image.podman("rm", "-f", name, check=False)
        delete_topics(settings)
    assert_totals_equal(stored_totals(settings), ground_truth(events))
