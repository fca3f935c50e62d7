"""deploy/compose/compose.yaml: valid Compose, consistent with the code, and its own services run under podman.

Third-party images cannot be pulled here (shared/CONTAINERS.md), so Kafka,
ClickHouse, Prometheus, Alertmanager and Grafana are checked structurally:
the Compose schema (``docker-compose config``, 1.29 from PyPI), every
``PULSE_`` variable a real setting with a valid value, every mounted file
present, ports and images as the code has them. The project's own services,
the worker and the collector, run from the file's definitions (command,
environment, healthcheck) in the image, against the local broker and the
ClickHouse stand-in in place of the ``kafka`` and ``clickhouse`` services.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.chserver import ChServer
from support.net import free_port
from support.truth import make_events

from pipeline import clickhouse
from pipeline.kafka.admin import consumer_lag, delete_topics
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
PROJECT_SERVICES = ("worker", "collector")  # the ones that run the image; the rest are third-party


def docker_compose(*args: str, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(ROOT / "deploy" / "local" / "docker-compose.sh"), "-f", str(COMPOSE / "compose.yaml")]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600, cwd=COMPOSE)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as docker-compose resolves it with .env.example's values (schema-checked on the way)."""
    done = docker_compose("config", env_file=COMPOSE / ".env.example")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_the_file_is_valid_compose_and_refuses_to_start_without_its_secrets(resolved, tmp_path):
    assert set(resolved["services"]) == {
        "kafka", "clickhouse", "worker", "collector", "prometheus", "alertmanager", "grafana",
    }  # fmt: skip
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = docker_compose("config", env_file=empty)
    assert done.returncode != 0 and "set CLICKHOUSE_PASSWORD in deploy/compose/.env" in done.stderr
    assert "deploy/compose/.env" in (ROOT / ".gitignore").read_text().splitlines()  # secrets never committed
    assert (COMPOSE / ".env.example").is_file()


def _pulse_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items() if k.startswith("PULSE_")}


def test_every_pulse_variable_is_a_real_setting_with_a_valid_value(resolved):
    fields = set(Settings.model_fields)
    for name in PROJECT_SERVICES:
        env = _pulse_env(resolved["services"][name])
        unknown = [k for k in env if k.removeprefix("PULSE_").lower() not in fields]
        assert unknown == [], (name, unknown)
        settings = Settings(**{k.removeprefix("PULSE_").lower(): v for k, v in env.items()})  # validates each
        assert settings.model_dump()  # and together (e.g. a non-loopback web host with its token)


def test_every_mounted_file_exists(raw):
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), (name, source)
    assert (COMPOSE / raw["x-pulse"]["build"]["context"] / raw["x-pulse"]["build"]["dockerfile"]).is_file()


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {
        int(p["target"]) if isinstance(p, dict) else int(str(p).rsplit(":", 1)[1].split("/")[0])
        for p in service.get("ports", [])
    }


def test_ports_hosts_and_images_match_the_code(resolved, raw):
    services = resolved["services"]
    worker, collector = (
        Settings(**{k[6:].lower(): v for k, v in _pulse_env(services[n]).items()}) for n in PROJECT_SERVICES
    )
    # The image build.sh builds and the base the Dockerfile defaults to.
    build_sh = (ROOT / "deploy" / "container" / "build.sh").read_text()
    assert raw["x-pulse"]["image"].replace("${PULSE_IMAGE_TAG:-dev}", "dev") in build_sh
    assert "ARG BASE=python:3.11-slim" in (ROOT / "Dockerfile").read_text()
    assert services["worker"]["command"] == ["worker"] and services["collector"]["command"] == ["collector"]
    # Kafka: the version deploy/local runs; the bootstrap the services use is the broker's advertised listener.
    kafka_version = re.search(r"<kafka.version>(.+)</kafka.version>", (ROOT / "deploy/local/kafka/pom.xml").read_text())
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version.group(1)}"
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for s in (worker, collector):
        assert f"PLAINTEXT://{s.kafka_bootstrap}" in advertised.split(",")
    # ClickHouse: the DSN names the service, its HTTP port and the database the image creates.
    dsn = urlsplit(worker.clickhouse_url)
    assert (dsn.hostname, dsn.port, dsn.path.strip("/")) == ("clickhouse", 8123, worker.clickhouse_database)
    assert services["clickhouse"]["environment"]["CLICKHOUSE_DB"] == worker.clickhouse_database
    assert dsn.password == services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]
    # The ports the settings say are the ones published, probed and scraped.
    assert worker.web_port in _container_ports(services["worker"])
    assert collector.collector_port in _container_ports(services["collector"])
    assert f"127.0.0.1:{worker.web_port}/readyz" in " ".join(services["worker"]["healthcheck"]["test"])
    assert f"127.0.0.1:{collector.collector_port}/readyz" in " ".join(services["collector"]["healthcheck"]["test"])
    prometheus = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    assert jobs["pulse-worker"]["dns_sd_configs"][0] == {"names": ["worker"], "type": "A", "port": worker.metrics_port}
    assert jobs["pulse-collector"]["static_configs"][0]["targets"] == [f"collector:{collector.collector_port}"]
    assert worker.alertmanager_url == "http://alertmanager:9093" and 9093 in _container_ports(services["alertmanager"])
    # Grafana: the dashboards folder the provisioning reads is the one mounted; the datasource uids the JSON uses.
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/productpulse.yml").read_text())
    mounted = {v.split(":")[1] for v in raw["services"]["grafana"]["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounted
    uids = {d["uid"] for d in yaml.safe_load((COMPOSE / "grafana-datasources.yml").read_text())["datasources"]}
    used = set(
        re.findall(
            r'"uid": "(pulse-(?:clickhouse|prometheus))"', (ROOT / "dashboards/grafana/pulse-product.json").read_text()
        )
    )
    assert used and used <= uids


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _wait(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _get(url) == 200:
            return
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 within {timeout_s}s")


@pytest.mark.container
@pytest.mark.integration
def test_the_worker_and_collector_of_the_file_run_under_podman(resolved, image, kafka_bootstrap, tmp_path):
    tag = uuid.uuid4().hex[:10]
    server = ChServer(tmp_path / "chserver", tmp_path / "chserver.log", password="compose-test-secret").start()
    web_port, metrics_port, collector_port = free_port(), free_port(), free_port()
    # The file's environment, with the hosts of the services that cannot run here replaced by what stands in
    # for them on this machine, and the ports moved to free ones (--network host shares the host's).
    local = {
        "PULSE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PULSE_CLICKHOUSE_DSN": server.dsn("pulse"),
        "PULSE_TOPIC_PREFIX": f"compose-{tag}",
        "PULSE_CONSUMER_GROUP": f"compose_{tag}",
        "PULSE_TOPIC_PARTITIONS": "2",
        "PULSE_WEB_PORT": str(web_port),
        "PULSE_METRICS_PORT": str(metrics_port),
        "PULSE_COLLECTOR_PORT": str(collector_port),
        "PULSE_ALERTMANAGER_URL": "",
    }
    names = []
    try:
        for name in PROJECT_SERVICES:
            service = resolved["services"][name]
            env = {**{k: str(v) for k, v in service["environment"].items()}, **local}
            args = [a for k, v in env.items() if v for a in ("-e", f"{k}={v}")]
            cname = f"pulse-compose-{name}-{tag}"
            image.podman("run", "-d", "--name", cname, "--network", "host", *args, image.ref, *service["command"])
            names.append(cname)
        _wait(f"http://127.0.0.1:{web_port}/readyz")
        _wait(f"http://127.0.0.1:{collector_port}/readyz")

        key = dict(
            p.split("=", 1)
            for p in resolved["services"]["collector"]["environment"]["PULSE_COLLECTOR_WRITE_KEYS"].split(",")
        )["checkout"]
        events = make_events(200, ["checkout"], seed=7)
        request = urllib.request.Request(
            f"http://127.0.0.1:{collector_port}/v1/events", data=json.dumps(events, default=str).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 202
        settings = Settings(
            kafka_bootstrap=kafka_bootstrap, topic_prefix=f"compose-{tag}", consumer_group=f"compose_{tag}"
        )
        deadline = time.monotonic() + 120
        while consumer_lag(settings, settings.events_topic) and time.monotonic() < deadline:
            time.sleep(0.5)
        store = Settings(clickhouse_dsn=server.dsn("pulse"))
        with clickhouse.opened(store) as client:
            stored = client.query("SELECT count() FROM pulse.events FINAL WHERE product = 'checkout'").result_rows[0][0]
        assert stored == 200
        for cname in names:  # the image's HEALTHCHECK passes for both
            health = image.podman("healthcheck", "run", cname, check=False)
            assert health.returncode == 0, (cname, health.stdout, health.stderr)
    finally:
        for cname in names:
            image.podman("rm", "-f", "-t", "20", cname, check=False, timeout=60)
        server.stop()
        delete_topics(Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"compose-{tag}"))
