"""deploy/k8s: the kustomize base is valid Kubernetes, consistent with the code, and runs under podman.

Every manifest of the base (and the Secret its secretGenerator makes from
secrets.env.example) validates strictly against the Kubernetes schemas
(kubernetes-validate); settings, ports, probes, labels and the KEDA note agree
with the code; the generated ConfigMaps are up to date. Then the worker and
collector Deployments run with ``podman kube play`` against the local broker
and the ClickHouse stand-in, and an event posted to the collector is stored.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from support.chserver import ChServer
from support.net import free_port
from support.truth import make_events

from alerts.rules import check_files
from pipeline import clickhouse
from pipeline.kafka.admin import consumer_lag, delete_topics
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return load(BASE / "kustomization.yaml")[0]


@pytest.fixture(scope="module")
def manifests(kustomization) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest: the base's resources and the Secret its generator makes."""
    docs = [d for r in kustomization["resources"] for d in load(BASE / r)]
    (generator,) = kustomization["secretGenerator"]
    example = (BASE / (generator["envs"][0] + ".example")).read_text().splitlines()
    data = dict(line.split("=", 1) for line in example if line and not line.startswith("#"))
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]}, "stringData": data})
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_generated_configmaps_are_up_to_date():
    done = subprocess.run([sys.executable, str(K8S / "configmaps.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_manifest_validates_against_the_kubernetes_schemas(manifests, kustomization):
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk  # nothing written and forgotten
    version = latest_version()
    for doc in manifests.values():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema error or unknown field
    assert {k for k, _ in manifests} >= {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_settings_probes_and_labels_agree_with_the_code(manifests):
    env = {**manifests[("ConfigMap", "pulse-settings")]["data"], **manifests[("Secret", "pulse-secrets")]["stringData"]}
    fields = set(Settings.model_fields)
    assert [k for k in env if k.removeprefix("PULSE_").lower() not in fields] == []
    settings = Settings(**{k.removeprefix("PULSE_").lower(): v for k, v in env.items()})  # valid, together
    assert not settings.embedded_clickhouse  # several workers need a ClickHouse server

    worker = manifests[("Deployment", "pulse-worker")]
    collector = manifests[("Deployment", "pulse-collector")]
    for deployment, args, port, name in ((worker, ["worker"], settings.web_port, "web"),
                                         (collector, ["collector"], settings.collector_port, "http")):  # fmt: skip
        c = _container(deployment)
        assert c["args"] == args
        assert {p["name"]: p["containerPort"] for p in c["ports"]}[name] == port
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": name}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": name}
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
        assert "USER 10001:10001" in (ROOT / "Dockerfile").read_text()
        refs = [next(iter(e.values()))["name"] for e in c["envFrom"]]
        assert refs == ["pulse-settings", "pulse-secrets"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    assert {p["name"]: p["containerPort"] for p in _container(worker)["ports"]}["metrics"] == settings.metrics_port

    for service, deployment in (("pulse-worker", worker), ("pulse-collector", collector)):
        selector = manifests[("Service", service)]["spec"]["selector"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    pdb = manifests[("PodDisruptionBudget", "pulse-worker")]["spec"]
    assert pdb["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"] and pdb["maxUnavailable"] == 1
    assert worker["spec"]["replicas"] <= settings.topic_partitions

    # The rules ConfigMap is mounted where PULSE_ALERT_RULES_DIR points, and its files are valid rule files.
    mounts = {m["name"]: m["mountPath"] for m in _container(worker)["volumeMounts"]}
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    rules_volume = next(n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "pulse-rules")
    assert mounts[rules_volume] == str(settings.alert_rules_dir)
    assert "pulse-dashboards" in {n for _, n in manifests}


def test_the_keda_note_scales_the_worker_group_up_to_the_partition_count(manifests, tmp_path):
    (scaled,) = load(K8S / "keda-scaledobject.yaml")
    settings = Settings(**{k[6:].lower(): v for k, v in manifests[("ConfigMap", "pulse-settings")]["data"].items()})
    assert scaled["spec"]["scaleTargetRef"]["name"] == "pulse-worker"
    assert scaled["spec"]["maxReplicaCount"] <= settings.topic_partitions
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == settings.consumer_group
    assert trigger["metadata"]["topic"] == settings.events_topic
    assert trigger["metadata"]["bootstrapServers"] == settings.kafka_bootstrap


def test_the_production_overlay_patches_what_the_base_has(manifests):
    (overlay,) = load(K8S / "overlays" / "production" / "kustomization.yaml")
    assert overlay["resources"] == ["../../base"]
    images = {_container(d)["image"].split(":")[0] for (k, _), d in manifests.items() if k == "Deployment"}
    assert {i["name"] for i in overlay["images"]} == images
    names = {n for k, n in manifests if k == "Deployment"}
    assert {r["name"] for r in overlay["replicas"]} <= names
    assert {p["target"]["name"] for p in overlay["patches"]} <= names


def test_rule_files_in_the_configmap_load(manifests, tmp_path):
    for name, text in manifests[("ConfigMap", "pulse-rules")]["data"].items():
        (tmp_path / name).write_text(text)
    assert check_files([tmp_path]) == []


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _wait(url: str, timeout_s: float = 150) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _get(url) == 200:
            return
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 within {timeout_s}s")


def _configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


@pytest.mark.container
@pytest.mark.integration
def test_worker_and_collector_run_from_the_manifests_with_podman_kube_play(manifests, image, kafka_bootstrap, tmp_path):
    """The base's Deployments as they are, but for what this machine needs: host networking (the broker is
    on 127.0.0.1; podman then allows no port list), free ports (other tests share the host's), no httpGet
    probes (podman runs them with curl, which the image lacks; its HEALTHCHECK stays), and the Secret's
    values in a ConfigMap (podman 4.3 keeps kube Secrets in a secret store of its own). Settings and rules
    arrive as in a cluster: through envFrom and the rules ConfigMap volume."""
    tag = uuid.uuid4().hex[:10]
    server = ChServer(tmp_path / "chserver", tmp_path / "chserver.log", password="kube-test-secret").start()
    web, metrics, http = free_port(), free_port(), free_port()
    settings_data = {
        **manifests[("ConfigMap", "pulse-settings")]["data"],
        "PULSE_KAFKA_BOOTSTRAP": kafka_bootstrap, "PULSE_TOPIC_PREFIX": f"kube-{tag}",
        "PULSE_CONSUMER_GROUP": f"kube_{tag}", "PULSE_TOPIC_PARTITIONS": "2", "PULSE_TOPIC_REPLICATION": "1",
        "PULSE_WEB_PORT": str(web), "PULSE_METRICS_PORT": str(metrics), "PULSE_COLLECTOR_PORT": str(http),
        "PULSE_WEB_HOST": "127.0.0.1", "PULSE_METRICS_HOST": "127.0.0.1", "PULSE_COLLECTOR_HOST": "127.0.0.1",
        "PULSE_ALERTMANAGER_URL": "",
    }  # fmt: skip
    del settings_data["PULSE_ALERTMANAGER_URL"]
    secrets = {**manifests[("Secret", "pulse-secrets")]["stringData"], "PULSE_CLICKHOUSE_DSN": server.dsn("pulse")}
    ports = {"web": web, "metrics": metrics, "http": http}
    docs = []
    for name in ("pulse-worker", "pulse-collector"):
        d = copy.deepcopy(manifests[("Deployment", name)])
        d["metadata"]["name"] = f"{name}-{tag}"
        d["spec"]["replicas"] = 1
        pod = d["spec"]["template"]["spec"]
        pod["hostNetwork"] = True
        pod.pop("affinity")
        c = _container(d)
        c["image"] = image.ref
        c["envFrom"][1] = {"configMapRef": {"name": "pulse-secrets"}}
        assert {p["name"] for p in c.pop("ports")} <= set(ports)  # podman: no port mappings with hostNetwork
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            c.pop(probe, None)
        docs.append(d)
    configmaps = [
        _configmap("pulse-settings", settings_data), _configmap("pulse-secrets", secrets),
        manifests[("ConfigMap", "pulse-rules")],
    ]  # fmt: skip
    play = tmp_path / "kube.yaml"
    play.write_text(yaml.safe_dump_all([*configmaps, *docs]))
    try:
        played = image.podman("kube", "play", str(play), check=False, timeout=300)
        assert played.returncode == 0, played.stdout + played.stderr
        _wait(f"http://127.0.0.1:{web}/readyz")
        _wait(f"http://127.0.0.1:{http}/readyz")

        key = dict(p.split("=", 1) for p in secrets["PULSE_COLLECTOR_WRITE_KEYS"].split(","))["checkout"]
        events = make_events(150, ["checkout"], seed=8)
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/v1/events", data=json.dumps(events, default=str).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 202
        kafka = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"kube-{tag}", consumer_group=f"kube_{tag}")
        deadline = time.monotonic() + 120
        while consumer_lag(kafka, kafka.events_topic) and time.monotonic() < deadline:
            time.sleep(0.5)
        with clickhouse.opened(Settings(clickhouse_dsn=server.dsn("pulse"))) as client:
            stored = client.query("SELECT count() FROM pulse.events FINAL WHERE product = 'checkout'").result_rows[0][0]
        assert stored == 150
        # The rules ConfigMap is mounted where the settings (from envFrom) point, and loads there.
        probe = "from alerts.rules import check_files, rules_paths; from pipeline.settings import Settings; "
        probe += "p = rules_paths(Settings()); print(p, check_files(p))"
        inside = image.podman("exec", f"pulse-worker-{tag}-pod-0-worker", "python3", "-c", probe, check=False)
        assert inside.stdout.strip() == "[PosixPath('/etc/pulse/rules')] []", inside.stdout + inside.stderr
    finally:
        image.podman("kube", "down", str(play), check=False, timeout=120)
        server.stop()
        delete_topics(Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"kube-{tag}"))
