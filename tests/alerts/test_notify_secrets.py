"""A notifier's errors never carry its URL: a webhook URL's path or query is often its token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alerts.notify.delivery import DeliveryFailed, PermanentFailure, post_json, redact

TOKEN = "WHtoken_777abc"


class _Echo(BaseHTTPRequestHandler):
    """Answers the status named by the path's first segment, echoing the whole path (as some receivers do)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = int(self.path.split("/")[1])
        body = f"no hook at {self.path}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "raised"), [(404, PermanentFailure), (500, DeliveryFailed), (429, DeliveryFailed)])
def test_http_errors_do_not_echo_the_url(receiver, status, raised):
    with pytest.raises(raised) as info:
        post_json(f"{receiver}/{status}/T0/{TOKEN}?key={TOKEN}", b"{}", 5)
    assert TOKEN not in str(info.value) and str(status) in str(info.value)


@pytest.mark.parametrize(
    "url", [f"hooks.example/T0/{TOKEN}", f"ftp://hooks.example/{TOKEN}", f"http://u:{TOKEN}@127.0.0.1:1/x"]
)
def test_a_bad_or_unreachable_url_is_not_quoted(url):
    with pytest.raises((PermanentFailure, DeliveryFailed)) as info:
        post_json(url, b"{}", 2)
    assert TOKEN not in str(info.value)


def test_redact_removes_every_secret_part():
    url = f"https://user:{TOKEN}@hooks.example/services/{TOKEN}?token={TOKEN}#{TOKEN}"
    assert TOKEN not in redact(f"failed at {url} and /services/{TOKEN} ({TOKEN})", url)
