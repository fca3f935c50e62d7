"""Who may use the worker's pages: the Host check, the bearer token, and the refusal to start exposed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumers.web import WebGuard, check_exposure, host_name
from pipeline.errors import UsageError
from pipeline.settings import WebSettings, describe_invalid

TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:6066", "127.0.0.1"),
        ("LocalHost:80", "localhost"),
        ("[::1]", "::1"),
        ("[::1]:6066", "::1"),
        ("evil.example:6066", "evil.example"),
        ("", ""),
    ],
)
def test_host_name_drops_the_port(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("host", ["127.0.0.1:6066", "localhost", "[::1]:1"])
def test_loopback_hosts_pass_without_a_token_configured(host):
    assert WebGuard(WebSettings()).refusal({"Host": host}) is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:6066", "127.0.0.1.evil.example", "", "10.0.0.5"])
def test_other_hosts_are_misdirected(host):
    refused = WebGuard(WebSettings()).refusal({"Host": host})
    assert refused is not None and refused[0].status == 421


def test_allowed_hosts_and_the_bind_address_are_served():
    guard = WebGuard(WebSettings(web_host="10.0.0.5", web_token=TOKEN, web_allowed_hosts="Pulse.Internal, other"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for host in ("pulse.internal:6066", "other", "10.0.0.5:6066", "127.0.0.1"):
        assert guard.refusal({"Host": host, **auth}) is None, host
    assert guard.refusal({"Host": "third", **auth}) is not None


def test_the_dashboard_url_host_is_served():
    guard = WebGuard(WebSettings(dashboard_url="https://Pulse.Example.com/base/"))
    assert guard.refusal({"Host": "pulse.example.com"}) is None


@pytest.mark.parametrize("auth", [None, "", f"Bearer {TOKEN}x", f"bearer {TOKEN}", TOKEN, f"Basic {TOKEN}", "Bearer"])
def test_a_wrong_or_missing_token_is_401(auth):
    guard = WebGuard(WebSettings(web_token=TOKEN))
    headers = {"Host": "127.0.0.1"} if auth is None else {"Host": "127.0.0.1", "Authorization": auth}
    refused = guard.refusal(headers)
    assert refused is not None and refused[0].status == 401 and refused[1]["WWW-Authenticate"] == "Bearer"
    assert TOKEN not in str(refused[0].body)
    assert guard.refusal({"Host": "127.0.0.1", "Authorization": f"Bearer {TOKEN}"}) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "pulse.internal"])
def test_an_exposed_port_without_a_token_is_refused(host):
    with pytest.raises(UsageError, match="PULSE_WEB_TOKEN"):
        check_exposure(WebSettings(web_host=host))
    check_exposure(WebSettings(web_host=host, web_token=TOKEN))
    check_exposure(WebSettings(web_host=host, web_port=0))  # no web server: nothing exposed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_needs_no_token(host):
    check_exposure(WebSettings(web_host=host))


def test_a_short_token_is_refused():
    with pytest.raises(ValidationError, match="at least 16"):
        WebSettings(web_token="short")


def test_a_refused_token_is_not_echoed():
    with pytest.raises(ValidationError) as info:
        WebSettings(web_token="hunter2-short")
    (line,) = describe_invalid(info.value)
    assert line.startswith("PULSE_WEB_TOKEN: ") and "hunter2" not in line
