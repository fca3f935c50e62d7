"""Telling a refused Kafka login from an unreachable broker.

kafka-python does not raise a SASL authentication failure: it logs it, backs
off, tries again and, once its bootstrap timeout is up, raises
``KafkaTimeoutError("Unable to bootstrap ...")`` - the same error as a broker
that is down. A wrong password would look like an outage and be retried
forever. :func:`login_watch` wraps the code that connects: while it runs, a
filter on kafka-python's connection loggers holds their warnings back and
notes an authentication failure; if the block then fails, it raises
:class:`LoginRefused` with one line naming the broker, the user and the
mechanism (never the password), and the held-back lines are dropped. If the
block fails for another reason, or succeeds, the held-back lines are logged
as they would have been. Held lines are re-logged only from the watched
loggers' level up, so nothing shows that would not have shown anyway.

The filter sees every kafka-python client of the process while a watch is
open: two clients connecting at once with different credentials could see
each other's failure. The pipeline's processes connect one client at a time
at start, where the watch is used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.errors import PulseError
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import KafkaSettings

WATCHED_LOGGERS = ("kafka.net.connection", "kafka.net.manager", "kafka.net.transport", "kafka.net.compat")
AUTH_FAILURE_MARK = "SaslAuthenticationFailed"  # kafka-python's error class name, in the lines it logs


PROBE_TIMEOUT_S = 5.0  # check_login's bootstrap: a refusal comes within a second on a reachable broker


class LoginRefused(PulseError):
    """The broker refused the SASL credentials: a setting to fix, not an outage to wait out.

    ``problems`` makes the CLI print it as a configuration problem (one line, exit 2), as invalid settings are.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problems = [message]


def refused_message(settings: KafkaSettings) -> str:
    """One line for a refused login: where, who, how; never the password."""
    return (
        f"Kafka at {settings.kafka_bootstrap} refused the SASL credentials for user "
        f"{settings.kafka_sasl_username or ''!r} ({settings.kafka_sasl_mechanism}); "
        "check PULSE_KAFKA_SASL_USERNAME and PULSE_KAFKA_SASL_PASSWORD"
    )


class _Watch(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.held: list[logging.LogRecord] = []
        self.refused = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        with self.lock:
            self.refused = self.refused or AUTH_FAILURE_MARK in text
            self.held.append(record)
        return False

    def release(self) -> None:
        """Log what was held back, as it would have been logged."""
        with self.lock:
            held, self.held = self.held, []
        for record in held:
            for handler in _handlers_for(logging.getLogger(record.name)):
                if record.levelno >= handler.level:
                    handler.handle(record)


def _handlers_for(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``logger`` reaches (its own and its ancestors' until propagate stops)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    if not found and logging.lastResort is not None:
        found.append(logging.lastResort)
    return found


def is_sasl(settings: KafkaSettings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL")


def check_login(settings: KafkaSettings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`LoginRefused` if the broker refuses the SASL credentials; otherwise return, within about
    ``timeout_s``, whether the broker answered or not (an outage is the caller's to wait out or report).

    kafka-python keeps retrying a refused login until its bootstrap timeout (30 s for an admin client), so
    processes that start with a long timeout ask this short question first.
    """
    if not is_sasl(settings):
        return
    from kafka import KafkaAdminClient  # here: the import is slow, and PLAINTEXT callers never need it

    try:
        with login_watch(settings):
            admin = KafkaAdminClient(
                client_id="pulse-login-check",
                bootstrap_timeout_ms=int(timeout_s * 1000),
                **kafka_python_config(settings),
            )
    except LoginRefused:
        raise
    except Exception:  # noqa: BLE001 - unreachable, slow, TLS trouble: not a refused login; the caller's own
        return  # connection reports it with its own timeout
    admin.close()


@contextmanager
def login_watch(settings: KafkaSettings) -> Iterator[None]:
    """Run a block that connects; raise :class:`LoginRefused` if it failed because the login was refused."""
    if not is_sasl(settings):
        yield
        return
    watch = _Watch()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    for logger in loggers:
        logger.addFilter(watch)
    try:
        yield
    except Exception:
        if watch.refused:
            with watch.lock:
                watch.held.clear()
            raise LoginRefused(refused_message(settings)) from None
        raise
    finally:
        for logger in loggers:
            logger.removeFilter(watch)
        watch.release()
