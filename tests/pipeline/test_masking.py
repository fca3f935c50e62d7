"""What `pulse config show` and the CLI's error lines may show of the settings: never a secret."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from pipeline.cli.main import _scrub, main
from pipeline.masking import MASK, effective_settings, mask_url, redact, shown_value
from pipeline.settings import Settings


def test_urls_keep_what_locates_them_and_lose_their_secrets():
    assert mask_url("http://user:pw@host:8123/db") == "http://user:***@host:8123/db"
    assert mask_url("https://ch.example/db?user=a&password=pw") == "https://ch.example/db?user=***&password=***"
    assert mask_url("http://host:8123") == "http://host:8123"
    assert mask_url("https://hooks.example/services/T0/tok", host_only=True) == "https://hooks.example/***"
    assert mask_url("https://u:p@[::1]:9/x", host_only=True) == "https://u:***@[::1]:9/***"
    assert mask_url("not a url but a token") == MASK


def test_every_secret_setting_is_masked():
    s = Settings(
        kafka_sasl_password=SecretStr("sasl-pw"),
        clickhouse_dsn=SecretStr("http://pulse:dsn-pw@ch:8123/pulse"),
        collector_write_keys=SecretStr("checkout=k1=x,search=key-two"),
        web_token=SecretStr("t" * 20),
        alert_webhook_url=SecretStr("https://hooks.example/T0/hook-token"),
        pii_hash_key=SecretStr("p" * 20),
        alertmanager_url="http://am:am-pw@127.0.0.1:9093",
    )
    shown = {name: shown_value(name, getattr(s, name)) for name in Settings.model_fields}
    assert shown["kafka_sasl_password"] == shown["web_token"] == shown["pii_hash_key"] == MASK
    assert shown["clickhouse_dsn"] == "http://pulse:***@ch:8123/pulse"
    assert shown["collector_write_keys"] == "checkout=***,search=***"
    assert shown["alert_webhook_url"] == "https://hooks.example/***"
    assert shown["alertmanager_url"] == "http://am:***@127.0.0.1:9093"
    text = json.dumps(shown, default=str)
    secrets = ("sasl-pw", "dsn-pw", "k1=x", "key-two", "t" * 20, "hook-token", "p" * 20, "am-pw")
    for secret in secrets:
        assert secret not in text
    scrubbed = redact("failed: " + " and ".join(secrets), s)
    assert scrubbed.startswith("failed: ") and not any(secret in scrubbed for secret in secrets)


def test_sources_are_flag_env_or_default():
    rows = {n: (v, src) for n, v, src in effective_settings(
        Settings(topic_prefix="flagged", consumer_group="g1"), {"pulse_consumer_group": "g1"}, {"topic_prefix": "x"}
    )}  # fmt: skip
    assert rows["PULSE_TOPIC_PREFIX"] == ("flagged", "flag")
    assert rows["PULSE_CONSUMER_GROUP"] == ("g1", "env")
    assert rows["PULSE_TOPIC_PARTITIONS"] == (12, "default")
    assert len(rows) == len(Settings.model_fields)


def test_config_show_prints_json_records(monkeypatch, capsys):
    monkeypatch.setenv("PULSE_CLICKHOUSE_DSN", "http://u:secret-pw@h:8123/")
    assert main(["config", "show", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "secret-pw" not in out
    rows = {r["setting"]: r for r in json.loads(out)}
    assert rows["PULSE_CLICKHOUSE_DSN"] == {"setting": "PULSE_CLICKHOUSE_DSN", "value": "http://u:***@h:8123/",
                                            "source": "env"}  # fmt: skip


@pytest.mark.parametrize("variable", ["PULSE_CLICKHOUSE_DSN", "PULSE_ALERT_WEBHOOK_URL"])
def test_error_lines_are_scrubbed_of_configured_secrets(monkeypatch, variable):
    monkeypatch.setenv(variable, "https://u:pw-in-url-1@h/path?token=tok-in-url-2")
    line = _scrub("OperationalError: https://u:pw-in-url-1@h/path?token=tok-in-url-2 refused")
    assert "pw-in-url-1" not in line and "tok-in-url-2" not in line and "refused" in line
