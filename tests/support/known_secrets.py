"""Known secrets for the tests that grep a process's output for them (test_secrets_in_logs, test_secret_sweep).

Each secret is a distinctive string that appears nowhere else, so finding it in
stdout, stderr or a log means a leak. :func:`secret_env` sets every one of them
where ProductPulse reads it; :func:`assert_clean` names the first one found.
"""

from __future__ import annotations

SASL_PASSWORD = "sasl-Pw_4242xyz"
DSN_PASSWORD = "dsnPw_8181qrs"
READER_PASSWORD = "readerPw_5151lmn"
WRITE_KEYS = ("wkCheckout_3131abc", "wkSearch_9191def")
WEB_TOKEN = "webToken_6161ghi0123456789"
WEBHOOK_TOKEN = "WHtoken_777abc"
PII_KEY = "piiKey_2121jkl0123456789"

KNOWN = {
    "the SASL password": SASL_PASSWORD,
    "the DSN password": DSN_PASSWORD,
    "the reader password": READER_PASSWORD,
    "a write key": WRITE_KEYS[0],
    "the second write key": WRITE_KEYS[1],
    "the web token": WEB_TOKEN,
    "the webhook token": WEBHOOK_TOKEN,
    "the PII hash key": PII_KEY,
}


def secret_env(dsn_host: str = "127.0.0.1:9", webhook: str = "https://hooks.example/T0/") -> dict[str, str]:
    """PULSE_* variables holding every known secret (the DSN points at ``dsn_host``, by default a closed port)."""
    return {
        "PULSE_KAFKA_SASL_USERNAME": "pulse",
        "PULSE_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "PULSE_CLICKHOUSE_DSN": f"http://pulse:{DSN_PASSWORD}@{dsn_host}/",
        "PULSE_CLICKHOUSE_READER_PASSWORD": READER_PASSWORD,
        "PULSE_COLLECTOR_WRITE_KEYS": f"checkout={WRITE_KEYS[0]},search={WRITE_KEYS[1]}",
        "PULSE_WEB_TOKEN": WEB_TOKEN,
        "PULSE_ALERT_WEBHOOK_URL": f"{webhook}{WEBHOOK_TOKEN}",
        "PULSE_PII_HASH_KEY": PII_KEY,
    }


def assert_clean(text: str, where: str = "the output") -> None:
    """Fail naming the first known secret that ``text`` holds."""
    for name, secret in KNOWN.items():
        assert secret not in text, f"{name} reached {where}"
