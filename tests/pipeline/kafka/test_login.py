"""login_watch tells a refused SASL login from other connection failures by what kafka-python logs."""

from __future__ import annotations

import logging

import pytest

from pipeline.kafka.login import LoginRefused, login_watch
from pipeline.settings import Settings

SASL = Settings(
    kafka_bootstrap="127.0.0.1:9",
    kafka_security_protocol="SASL_SSL",
    kafka_sasl_mechanism="SCRAM-SHA-512",
    kafka_sasl_username="svc",
    kafka_sasl_password="hunter2-s3cret",
)
CONNECTION = logging.getLogger("kafka.net.connection")
REFUSED = "Connection lost: [Error 58] SaslAuthenticationFailedError: invalid credentials with SASL mechanism"


def test_a_refused_login_becomes_one_line_and_its_library_lines_are_dropped(caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(LoginRefused) as info, login_watch(SASL):
        CONNECTION.error(REFUSED)
        CONNECTION.warning("Bootstrap bootstrap-0 not ready; waiting 0.05 secs")
        raise TimeoutError("Unable to bootstrap from ['127.0.0.1:9']")
    assert str(info.value) == (
        "Kafka at 127.0.0.1:9 refused the SASL credentials for user 'svc' (SCRAM-SHA-512); "
        "check PULSE_KAFKA_SASL_USERNAME and PULSE_KAFKA_SASL_PASSWORD"
    )
    assert info.value.problems == [str(info.value)]  # the CLI prints it as a configuration problem: exit 2
    assert "hunter2" not in str(info.value)
    assert not [r for r in caplog.records if r.name == CONNECTION.name]


def test_other_failures_keep_their_error_and_their_library_lines(caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(TimeoutError), login_watch(SASL):
        CONNECTION.error("Handshake failed: CERTIFICATE_VERIFY_FAILED")
        raise TimeoutError("Unable to bootstrap")
    assert [r.getMessage() for r in caplog.records] == ["Handshake failed: CERTIFICATE_VERIFY_FAILED"]


def test_a_login_that_succeeds_after_a_refusal_keeps_the_lines(caplog):
    caplog.set_level(logging.INFO)
    with login_watch(SASL):
        CONNECTION.error(REFUSED)
    assert [r.getMessage() for r in caplog.records] == [REFUSED]


def test_plaintext_is_not_watched(caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(TimeoutError), login_watch(Settings()):
        CONNECTION.error(REFUSED)
        raise TimeoutError("Unable to bootstrap")
    assert [r.getMessage() for r in caplog.records] == [REFUSED]
