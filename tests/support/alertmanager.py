"""The real Alertmanager for tests: a ``prometheus-alertmanager`` process on a free loopback port, with the
shipped config (or a given one) whose webhook receivers point at :class:`Hooks`, a local HTTP server that
records every body Alertmanager posts."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from support.net import free_port

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class Hooks:
    """Webhook receivers: every POST (Alertmanager's or ours), by path (/oncall, /pm, /default, ...)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hooks.lock:
                    hooks.posts.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.posts if p == path]

    def alerts(self, path: str, **labels: str) -> list[dict[str, Any]]:
        """Alerts in notifications to ``path`` whose labels include ``labels`` (one entry per notification)."""
        return [
            a for body in self.bodies(path) for a in body["alerts"]
            if all(a["labels"].get(k) == v for k, v in labels.items())
        ]  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as resp:
            return list(json.loads(resp.read()))

    def state(self, **filters: str) -> str | None:
        """The state (active, suppressed, unprocessed) of the one alert matching ``filters``, None if none."""
        found = self.alerts(**filters)
        assert len(found) <= 1, found
        return found[0]["status"]["state"] if found else None


def config_for_tests(hooks_url: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shipped config (or ``config``) with short group timers and every webhook pointed at ``hooks_url``."""
    config = config or yaml.safe_load(CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hooks_url + urllib.parse.urlsplit(hook["url"]).path
    return config


@contextmanager
def running_alertmanager(folder: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    """Start the real Alertmanager with ``config`` (its data and log in ``folder``); stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "am.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(folder / "alertmanager.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            "prometheus-alertmanager", f"--config.file={folder / 'am.yml'}",
            f"--storage.path={folder / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=", "--log.level=debug",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    am = Alertmanager(f"http://127.0.0.1:{port}", proc)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{am.url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return proc.poll() is not None  # exited: stop waiting, fail below

    try:
        wait_for("alertmanager to be ready", ready)
        assert proc.poll() is None, (folder / "alertmanager.log").read_text()
        yield am
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
