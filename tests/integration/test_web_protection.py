"""The web port is protected (issue 17, item 2): a real worker with a token, and one that refuses to start.

With ``PULSE_WEB_TOKEN`` set, the read API and the dashboards answer only a
request that carries it and names a served host; Faust's ``/router`` and
``/table`` views are gone; and ``pulse alerts status`` - which asks the worker,
since the worker holds the embedded store - sends the token and gets its answer.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys

import pytest
from pydantic import SecretStr
from support.net import free_port

pytestmark = pytest.mark.integration

TOKEN = "web-token-0123456789abcdef"


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)  # Host as given (http.client adds it only when absent)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def test_pages_want_the_token_and_a_served_host(settings, start_worker):
    port = free_port()
    settings = settings.model_copy(
        update={"web_port": port, "web_token": SecretStr(TOKEN), "web_allowed_hosts": "pulse.internal"}
    )
    worker = start_worker(settings)
    good = {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {TOKEN}"}

    served = {"/api/alerts/status": 200, "/": 200, "/releases": 200, "/products/checkout": 404}  # no such product yet
    for path, expected in served.items():
        assert _get(port, path, good)[0] == expected, path
        status, body = _get(port, path, {"Host": f"127.0.0.1:{port}"})
        assert status == 401 and "Authorization: Bearer" in body, (path, status, body)
        assert _get(port, path, {**good, "Authorization": f"Bearer {TOKEN[:-1]}"})[0] == 401, path
        # A browser sent by another site through a rebound DNS name names that site.
        assert _get(port, path, {**good, "Host": f"attacker.example:{port}"})[0] == 421, path
    for host in (f"localhost:{port}", f"[::1]:{port}", "pulse.internal"):
        assert _get(port, "/api/alerts/status", {**good, "Host": host})[0] == 200, host

    # A header too long to parse is a 400, logged in one line without its value (the token).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET /api/alerts/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}{'A' * 9000}"
            "\r\n\r\n".encode()
        )
        assert conn.recv(100).startswith(b"HTTP/1.0 400")
    worker.wait_for_log("event=bad_http_request", timeout_s=10)
    assert "Traceback" not in worker.log_text()

    # Faust's own views of the topology and tables are off.
    for path in ("/router/", "/table/"):
        assert _get(port, path, good)[0] == 404, path

    # The CLI's read command reaches the worker (the store is the worker's) with the token.
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "alerts", "status", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert TOKEN not in worker.log_text()


def test_the_worker_refuses_to_serve_beyond_loopback_without_a_token(settings):
    env = {**os.environ, **settings.model_copy(update={"web_port": free_port(), "web_host": "0.0.0.0"}).to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "PULSE_WEB_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
