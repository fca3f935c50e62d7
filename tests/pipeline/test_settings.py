"""Unit tests of Settings: defaults, PULSE_* overrides, validation, secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.settings import Settings, describe_invalid, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No PULSE_* variable of the calling shell leaks in; relative paths resolve under tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("PULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults():
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert s.kafka_sasl_password is None
    assert s.topic_prefix == "pulse"
    assert s.topic_partitions == 12
    assert s.clickhouse_database == "pulse"
    assert s.consumer_group == "pulse"
    assert (s.max_future_skew_s, s.allowed_lateness_s, s.max_event_bytes) == (3600, 300, 64 * 1024)


def test_default_topic_names():
    s = Settings()
    assert (s.events_topic, s.releases_topic, s.dlq_topic) == ("pulse.events", "pulse.releases", "pulse.events.dlq")


def test_topic_names_follow_prefix_from_env(monkeypatch):
    monkeypatch.setenv("PULSE_TOPIC_PREFIX", "acme-prod.v2")
    s = Settings()
    assert s.topic_prefix == "acme-prod.v2"
    assert s.events_topic == "acme-prod.v2.events"
    assert s.releases_topic == "acme-prod.v2.releases"
    assert s.dlq_topic == "acme-prod.v2.events.dlq"


def test_env_overrides_are_parsed(monkeypatch):
    monkeypatch.setenv("PULSE_KAFKA_BOOTSTRAP", "k1:9093,k2:9093")
    monkeypatch.setenv("PULSE_TOPIC_PARTITIONS", "3")
    monkeypatch.setenv("PULSE_BATCH_WITHIN_S", "0.25")
    monkeypatch.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PULSE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PULSE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("PULSE_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("pulse_allowed_lateness_s", "60")  # env names are case-insensitive
    s = Settings()
    assert s.kafka_bootstrap == "k1:9093,k2:9093"
    assert s.topic_partitions == 3
    assert s.batch_within_s == 0.25
    assert s.kafka_security_protocol == "SASL_SSL"
    assert s.allowed_lateness_s == 60


def test_unprefixed_env_is_ignored(monkeypatch):
    monkeypatch.setenv("TOPIC_PREFIX", "other")
    assert Settings().topic_prefix == "pulse"


def test_load_settings_overrides_env_and_skips_none(monkeypatch):
    monkeypatch.setenv("PULSE_TOPIC_PREFIX", "fromenv")
    monkeypatch.setenv("PULSE_TOPIC_PARTITIONS", "4")
    s = load_settings(topic_prefix="fromflag", topic_partitions=None)
    assert s.topic_prefix == "fromflag"
    assert s.topic_partitions == 4


@pytest.mark.parametrize("prefix", ["bad prefix", "", "a/b", "pulse:x", "tab\there"])
def test_bad_topic_prefix_from_env(monkeypatch, prefix):
    monkeypatch.setenv("PULSE_TOPIC_PREFIX", prefix)
    with pytest.raises(ValidationError, match="topic_prefix"):
        Settings()


@pytest.mark.parametrize("prefix", ["pulsé", "ｐｕｌｓｅ", "プ"], ids=["latin1-accent", "fullwidth", "katakana"])
def test_non_ascii_topic_prefix_is_rejected(prefix):
    # Kafka topic names may only use ASCII [a-zA-Z0-9._-]; str.isalnum() also accepts
    # any Unicode letter, so these prefixes pass validation and fail at topic creation.
    with pytest.raises(ValidationError, match="topic_prefix"):
        Settings(topic_prefix=prefix)


@pytest.mark.parametrize("partitions", [0, -1, 1025])
def test_partitions_out_of_range(partitions):
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings(topic_partitions=partitions)


def test_partitions_from_env_must_be_an_int(monkeypatch):
    monkeypatch.setenv("PULSE_TOPIC_PARTITIONS", "twelve")
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings()


@pytest.mark.parametrize("name", ["my-db", "1pulse", "", "pulse db", "pulse.events", "_"])
def test_database_must_be_a_plain_identifier(name):
    with pytest.raises(ValidationError, match="clickhouse_database"):
        Settings(clickhouse_database=name)


@pytest.mark.parametrize("name", ["my group", "", "grüppe", "a/b", "x" * 201])
def test_consumer_group_must_be_a_kafka_name(name):
    with pytest.raises(ValidationError, match="consumer_group"):
        Settings(consumer_group=name)


@pytest.mark.parametrize("name", ["my-group", "9lives", "pulse.prod", "pulse_2024"])
def test_consumer_group_accepts_ordinary_kafka_names(name):
    assert Settings(consumer_group=name).consumer_group == name


@pytest.mark.parametrize("name", ["pulse_2024", "_staging", "Analytics"])
def test_plain_identifiers_are_accepted(name):
    assert Settings(clickhouse_database=name).clickhouse_database == name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kafka_security_protocol", "TLS"),
        ("kafka_sasl_mechanism", "GSSAPI"),
        ("max_event_bytes", 255),
        ("batch_within_s", 0),
        ("metrics_port", 70000),
        ("dedup_window", -1),
    ],
)
def test_other_invalid_values(field, value):
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_sasl_password_is_secret(monkeypatch):
    monkeypatch.setenv("PULSE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("PULSE_KAFKA_SASL_PASSWORD", "hunter2-s3cret")
    s = Settings()
    assert isinstance(s.kafka_sasl_password, SecretStr)
    assert s.kafka_sasl_password.get_secret_value() == "hunter2-s3cret"
    assert "hunter2-s3cret" not in repr(s)
    assert "hunter2-s3cret" not in str(s)
    assert "hunter2-s3cret" not in s.model_dump_json()


def test_clickhouse_url_defaults_to_embedded_chdb(tmp_path):
    s = Settings()
    expected = (tmp_path / ".pulse-data" / "clickhouse").resolve()
    assert s.clickhouse_url == f"chdb://{expected}"
    assert Path(s.clickhouse_url.removeprefix("chdb://")).is_absolute()
    assert s.embedded_clickhouse is True


def test_clickhouse_url_follows_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_DATA_DIR", "state/../data")
    s = Settings()
    assert s.clickhouse_url == f"chdb://{(tmp_path / 'data' / 'clickhouse').resolve()}"


def test_clickhouse_url_uses_dsn(monkeypatch):
    dsn = "https://reader:pa55word@ch.example.com:8443/pulse"
    monkeypatch.setenv("PULSE_CLICKHOUSE_DSN", dsn)
    s = Settings()
    assert s.clickhouse_url == dsn
    assert s.embedded_clickhouse is False
    assert isinstance(s.clickhouse_dsn, SecretStr)
    assert "pa55word" not in repr(s)


def test_chdb_dsn_is_embedded(monkeypatch):
    monkeypatch.setenv("PULSE_CLICKHOUSE_DSN", "chdb:///var/lib/pulse")
    assert Settings().embedded_clickhouse is True


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(ValidationError):
        s.topic_prefix = "other"  # type: ignore[misc]
    assert s.topic_prefix == "pulse"


def test_settings_compare_by_value():
    assert Settings(topic_partitions=3) == Settings(topic_partitions=3)
    assert Settings(topic_partitions=3) != Settings(topic_partitions=4)


def test_to_env_round_trips(monkeypatch):
    s = Settings(
        topic_prefix="acme",
        topic_partitions=6,
        kafka_sasl_password="hunter2",
        clickhouse_dsn="http://u:p@h:8123/db",
        data_dir=Path("/srv/pulse"),
        batch_within_s=0.5,
    )
    env = s.to_env()
    assert env["PULSE_KAFKA_SASL_PASSWORD"] == "hunter2"
    assert env["PULSE_TOPIC_PARTITIONS"] == "6"
    assert "PULSE_KAFKA_SASL_MECHANISM" not in env  # None is left out
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings() == s


# --- configuration traps: each is refused at start with one line naming the variable ---------------------------


@pytest.mark.parametrize("bootstrap", ["localhost", "broker:", ":9092", "broker:99999", "a:9092,b"])
def test_bootstrap_without_a_valid_port_is_refused(bootstrap):
    with pytest.raises(ValidationError) as info:
        Settings(kafka_bootstrap=bootstrap)
    (line,) = describe_invalid(info.value)
    assert line.startswith("PULSE_KAFKA_BOOTSTRAP: ") and "host:port" in line and "127.0.0.1:9092" in line


def test_bootstrap_list_is_normalised():
    assert Settings(kafka_bootstrap=" k1:9092, k2:9093 ").kafka_bootstrap == "k1:9092,k2:9093"


def test_sasl_without_a_mechanism_is_refused_for_every_client():
    with pytest.raises(ValidationError, match="PULSE_KAFKA_SASL_MECHANISM"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="p")
    ok = Settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
        kafka_sasl_password="p",
    )  # fmt: skip
    assert ok.kafka_sasl_mechanism == "PLAIN"


@pytest.mark.parametrize("missing", ["kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_credentials_is_refused_in_one_line(missing):
    given = {"kafka_sasl_username": "u", "kafka_sasl_password": "p"}
    del given[missing]
    with pytest.raises(ValidationError) as info:
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", **given)
    (line,) = describe_invalid(info.value)
    assert "PULSE_KAFKA_SASL_USERNAME and PULSE_KAFKA_SASL_PASSWORD" in line


def test_missing_ssl_files_are_refused_at_start(tmp_path):
    with pytest.raises(ValidationError, match="PULSE_KAFKA_SSL_CAFILE: no such file"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "nope.pem")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca).kafka_ssl_cafile == ca


def test_each_problem_is_one_line_naming_its_variable_and_no_secret(monkeypatch):
    monkeypatch.setenv("PULSE_TOPIC_PARTITIONS", "twelve")
    monkeypatch.setenv("PULSE_BATCH_WITHIN_S", "-1")
    monkeypatch.setenv("PULSE_KAFKA_SASL_PASSWORD", "hunter2")
    with pytest.raises(ValidationError) as info:
        Settings()
    lines = describe_invalid(info.value)
    assert [line.split(":")[0] for line in lines] == ["PULSE_TOPIC_PARTITIONS", "PULSE_BATCH_WITHIN_S"]
    assert all("\n" not in line and "hunter2" not in line for line in lines)


# --- sections -----------------------------------------------------------------------------------------------------


def test_settings_is_every_section_and_each_field_is_declared_once():
    from pipeline import settings as module

    sections = [module.KafkaSettings, module.StoreSettings, module.IngestSettings, module.WorkerSettings,
                module.WebSettings, module.CollectorSettings, module.AlertSettings]  # fmt: skip
    assert all(issubclass(Settings, section) for section in sections)
    declared = [name for section in sections for name in section.model_fields]
    assert sorted(declared) == sorted(Settings.model_fields), "a field of Settings belongs to no section, or to two"
    assert len(declared) == len(set(declared))


def test_a_section_validates_its_own_fields():
    from pipeline.settings import KafkaSettings

    with pytest.raises(ValidationError, match="is not host:port"):
        KafkaSettings(kafka_bootstrap="localhost")
    assert KafkaSettings(topic_prefix="p").events_topic == "p.events"


def test_links_follow_the_web_port_unless_a_dashboard_url_is_given():
    assert Settings().dashboard_base_url == "http://127.0.0.1:6066"
    assert Settings(web_port=7001).dashboard_base_url == "http://127.0.0.1:7001"
    assert Settings(web_host="0.0.0.0", web_port=7001).web_url == "http://127.0.0.1:7001"
    assert Settings(web_host="::1", web_port=7001).web_url == "http://[::1]:7001"
    assert Settings(web_port=7001, dashboard_url="https://pulse.example/").dashboard_base_url == "https://pulse.example"


def test_the_web_server_and_metrics_bind_separately(monkeypatch):
    monkeypatch.setenv("PULSE_METRICS_HOST", "0.0.0.0")
    s = Settings()
    assert (s.metrics_host, s.web_host) == ("0.0.0.0", "127.0.0.1")
