"""ProductPulse settings: one frozen model, read from the environment once, in sections.

Every process builds a single :class:`Settings` (env prefix ``PULSE_``) and
passes it down; nothing deeper in the code reads ``os.environ``. Secrets are
``SecretStr`` so they never appear in logs or reprs.

The fields are declared in sections - :class:`KafkaSettings`,
:class:`StoreSettings`, :class:`IngestSettings`, :class:`WorkerSettings`,
:class:`WebSettings`, :class:`CollectorSettings`, :class:`AlertSettings` - and
:class:`Settings` is all of them (it inherits every section), so the variable
names stay flat (``PULSE_KAFKA_BOOTSTRAP``, ``PULSE_WEB_PORT``) while a room's
functions name the section they read: ``ensure_topics(kafka: KafkaSettings)``
may only touch Kafka fields, and mypy holds it to that. Test hooks are not
settings: tests inject them (``tests/support/``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import PulseError

DEFAULT_DATA_DIR = Path(".pulse-data")
_SECTION = ConfigDict(frozen=True, extra="ignore")
_WILDCARDS = ("0.0.0.0", "::", "")


class KafkaSettings(BaseModel):
    """How to reach Kafka, and the topics and consumer group (the emitter, the collector, the worker, the tools)."""

    model_config = _SECTION

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="comma-separated host:port list")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); unset: the system's",
    )
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    topic_prefix: str = Field("pulse", description="topics are <prefix>.events, <prefix>.releases, ...")
    topic_partitions: int = Field(12, ge=1, le=1024)
    topic_replication: int | None = Field(
        None,
        ge=1,
        description="replication factor of new topics; unset: 3 (min ISR 2) on three or more brokers, else 1",
    )
    consumer_group: str = "pulse"
    emitter_queue_size: int = Field(
        10_000, ge=1, description="events an Emitter holds for its background thread; when full, send() drops"
    )

    @field_validator("consumer_group")
    @classmethod
    def _kafka_group_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", v):
            raise ValueError("may only hold ASCII letters, digits, '.', '_' and '-' (at most 200), e.g. pulse-prod")
        return v

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_port_list(cls, v: str) -> str:
        for address in v.split(","):
            host, sep, port = address.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{address.strip()!r} is not host:port; give e.g. 127.0.0.1:9092,broker2:9092")
        return ",".join(a.strip() for a in v.split(","))

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        proto = self.kafka_security_protocol
        # All three, or a client would connect without credentials (kafka-python asserts, aiokafka sends an
        # empty password) and fail at the broker with a less clear message.
        if proto.startswith("SASL") and (
            self.kafka_sasl_mechanism is None or not self.kafka_sasl_username or self.kafka_sasl_password is None
        ):
            raise ValueError(
                f"PULSE_KAFKA_SECURITY_PROTOCOL={proto} needs PULSE_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or "
                "SCRAM-SHA-512), PULSE_KAFKA_SASL_USERNAME and PULSE_KAFKA_SASL_PASSWORD"
            )
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"PULSE_{name.upper()}: no such file {str(path)!r}")
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("PULSE_KAFKA_SSL_KEYFILE is set without PULSE_KAFKA_SSL_CERTFILE")
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_topic_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", v):
            raise ValueError("topic_prefix may only hold ASCII letters, digits, '.', '_' and '-' (at most 200)")
        return v

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def releases_topic(self) -> str:
        return f"{self.topic_prefix}.releases"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}.events.dlq"


class StoreSettings(BaseModel):
    """Where ClickHouse is, and how long it keeps raw events."""

    model_config = _SECTION

    data_dir: Path = DEFAULT_DATA_DIR
    clickhouse_dsn: SecretStr | None = Field(
        None, description="http(s)://user:pass@host:8123/db or chdb:///path; default embedded chDB under data_dir"
    )
    clickhouse_database: str = "pulse"
    clickhouse_cluster: str | None = Field(
        None,
        description="a ClickHouse cluster (remote_servers) name: migrations create replicated local tables "
        "ON CLUSTER and Distributed tables sharded by product; unset = single node",
    )
    clickhouse_reader_user: str = Field(
        "pulse_reader", description="read-only ClickHouse user for Grafana (SELECT on the database only)"
    )
    clickhouse_reader_password: SecretStr | None = Field(
        None, description="its password; `pulse db migrate` creates the user only when set (and the server allows)"
    )
    events_ttl_days: int = Field(
        400, ge=1, le=20_000, description="raw events expire after this (ClickHouse DateTime ends in 2106)"
    )
    max_event_age_days: int | None = Field(
        None, ge=1, description="older events (and any before 1970) go to the DLQ; unset = events_ttl_days"
    )
    pii_hash_key: SecretStr | None = Field(
        None,
        description="when set, user_id and session_id are stored and dead-lettered as their keyed hash "
        "(BLAKE2b, 32 hex characters; pipeline/pii.py); 16 to 64 bytes, e.g. `openssl rand -hex 24`; unset = as sent",
    )

    @field_validator("pii_hash_key")
    @classmethod
    def _pii_key_length(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not 16 <= len(v.get_secret_value().encode()) <= 64:
            raise ValueError("must be 16 to 64 bytes (BLAKE2b's key), e.g. from `openssl rand -hex 24`")
        return v

    @field_validator("clickhouse_database", "clickhouse_reader_user")
    @classmethod
    def _plain_identifier(cls, v: str) -> str:
        if not re.fullmatch(r"_*[A-Za-z][A-Za-z0-9_]{0,62}", v):
            raise ValueError("must be a plain ASCII identifier (letters, digits, underscore), e.g. pulse")
        return v

    @field_validator("clickhouse_cluster")
    @classmethod
    def _cluster_name(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", v):
            raise ValueError("must be a cluster name from remote_servers (letters, digits, '_', '.', '-')")
        return v

    @model_validator(mode="after")
    def _cluster_needs_server(self) -> StoreSettings:
        """Embedded chDB is one process's folder: it has no Keeper and no other shards to distribute to."""
        if self.clickhouse_cluster is not None and self.embedded_clickhouse:
            raise ValueError("PULSE_CLICKHOUSE_CLUSTER needs a ClickHouse server: set PULSE_CLICKHOUSE_DSN")
        return self

    @property
    def clickhouse_url(self) -> str:
        """The DSN to connect with; embedded chDB under ``data_dir`` unless one is set."""
        if self.clickhouse_dsn is not None:
            return self.clickhouse_dsn.get_secret_value()
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_url.startswith("chdb://")

    @property
    def max_event_age_s(self) -> float:
        """How far in the past an event may lie: older ones would expire from ``events`` at once."""
        return 86_400.0 * (self.max_event_age_days or self.events_ttl_days)


class IngestSettings(BaseModel):
    """What an event may be to be accepted - the same bounds in the collector and the worker.

    How far back an event may lie is the store's to say (:attr:`StoreSettings.max_event_age_s`).
    """

    model_config = _SECTION

    max_event_bytes: int = Field(64 * 1024, ge=256, description="larger messages go to the DLQ")
    max_future_skew_s: int = Field(3600, ge=0, description="events further in the future go to the DLQ")
    # Cardinality caps per product (consumers/cardinality.py): values past them are stored as __overflow__.
    max_versions_per_product: int = Field(
        50, ge=0, description="distinct versions per product in the window; 0: no cap"
    )
    max_features_per_product: int = Field(200, ge=0, description="distinct features per product; 0: no cap")
    max_goals_per_product: int = Field(100, ge=0, description="distinct conversion goals per product; 0: no cap")
    max_operations_per_product: int = Field(200, ge=0, description="distinct operations per product; 0: no cap")
    cardinality_window_days: int = Field(
        30, ge=1, description="a value counts against its cap until it has not been seen for this long"
    )


class WorkerSettings(BaseModel):
    """How the worker batches, deduplicates and retries."""

    model_config = _SECTION

    batch_max_messages: int = Field(
        500, ge=1, description="a batch holds this many packs' worth of events (x100 lone events)"
    )
    batch_within_s: float = Field(1.0, gt=0, description="flush a partial batch after this many seconds")
    decode_process: bool = Field(
        True, description="decode batches in a process of their own (a second core); false: on a thread"
    )
    allowed_lateness_s: int = Field(300, ge=0, description="watermark = max event time - allowed lateness")
    dedup_window: int = Field(1_000_000, ge=0, description="event_ids remembered per worker for dedup")
    store_retry_timeout_s: float = Field(
        300.0, gt=0, description="retry a transient ClickHouse failure this long, then exit non-zero without acking"
    )
    store_max_attempts: int = Field(
        5, ge=1, description="attempts at an unclassified ClickHouse failure before exiting non-zero without acking"
    )
    shutdown_grace_s: float = Field(
        5.0, ge=0, description="on SIGTERM, let the in-flight batch finish this long, else abandon it uncommitted"
    )


class WebSettings(BaseModel):
    """The worker's web server (dashboards, read API) and /metrics: each its own address and port."""

    model_config = _SECTION

    web_host: str = Field("127.0.0.1", description="address the worker's web server (dashboards, read API) binds to")
    web_port: int = Field(6066, ge=0, le=65535, description="the worker's web server port (0 = off)")
    metrics_host: str = Field("127.0.0.1", description="address Prometheus /metrics binds to (0.0.0.0 in containers)")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus /metrics port (0 = off)")
    dashboard_url: str | None = Field(
        None,
        description="base URL of the built-in dashboards as users reach them, for links in notifications; "
        "unset = http://<web host>:<web port>",
    )
    web_token: SecretStr | None = Field(
        None,
        description="bearer token the read API and dashboards require (Authorization: Bearer <token>); "
        "required when web_host is not loopback",
    )
    web_allowed_hosts: str = Field(
        "",
        description="comma-separated Host names (no port) the web server answers besides loopback and its own "
        "bind address, e.g. pulse.internal; any other Host header gets 421 (DNS rebinding)",
    )
    web_read_threads: int = Field(2, ge=1, le=16, description="threads that run reads (API, dashboards)")
    web_read_queue: int = Field(8, ge=0, le=1000, description="reads waiting for a thread; beyond it, 503")
    web_read_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="a read's wall-clock bound (and each query's max_execution_time)"
    )
    web_read_max_rows: int = Field(
        1_000_000, ge=1, description="rows a read query may return (max_result_rows, result_overflow_mode=throw)"
    )
    web_backtest_max_steps: int = Field(2_000, ge=1, description="a backtest's largest (until - since) / step")
    web_backtest_max_days: int = Field(90, ge=1, description="a backtest's longest window, in days")

    @field_validator("web_token")
    @classmethod
    def _token_is_strong(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and (len(v.get_secret_value()) < 16 or not v.get_secret_value().isprintable()):
            raise ValueError("must be at least 16 printable characters, e.g. from `openssl rand -hex 24`")
        return v

    @property
    def web_host_names(self) -> frozenset[str]:
        """Host header names the web server answers (lowercase, no port): loopback, its own address, the host
        of ``dashboard_url`` and ``web_allowed_hosts``."""
        names = {"127.0.0.1", "localhost", "::1"}
        if self.web_host not in _WILDCARDS:
            names.add(self.web_host.strip("[]").lower())
        names.update(h.strip().strip("[]").lower() for h in self.web_allowed_hosts.split(",") if h.strip())
        if self.dashboard_url and urlsplit(self.dashboard_url).hostname:  # where notification links send people
            names.add(str(urlsplit(self.dashboard_url).hostname).lower())
        return frozenset(names)

    @property
    def web_on_loopback(self) -> bool:
        """Whether the web server binds to a loopback address only (then a token is optional)."""
        host = self.web_host.strip("[]").lower()
        return host == "localhost" or host == "::1" or host.startswith("127.")

    @property
    def web_url(self) -> str:
        """Where this worker's web server answers: a wildcard bind address is reached on loopback."""
        host = "127.0.0.1" if self.web_host in _WILDCARDS else self.web_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.web_port}"

    @property
    def dashboard_base_url(self) -> str:
        """The built-in dashboards' base URL for links: ``dashboard_url``, else derived from the web port."""
        return (self.dashboard_url or self.web_url).rstrip("/")


class CollectorSettings(BaseModel):
    """The HTTP collector's address, write keys and limits."""

    model_config = _SECTION

    collector_host: str = Field("127.0.0.1", description="address `pulse collector` binds to")
    collector_port: int = Field(8088, ge=0, le=65535, description="port `pulse collector` listens on")
    collector_write_keys: SecretStr | None = Field(
        None,
        description="write keys as comma-separated product=key pairs, e.g. 'checkout=k1,search=k2' (split at the "
        "first '=', so keys may contain '='; not ','); a key authorizes events of its own product(s) only",
    )
    collector_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body as sent; decompressed bodies may be 8x this"
    )
    collector_max_events: int = Field(1_000, ge=1, le=100_000, description="most events in one request")
    collector_ack_timeout_s: float = Field(
        10.0, gt=0, le=300, description="wait this long for the broker's acks before answering 503"
    )
    collector_rate_limit_eps: float | None = Field(
        None,
        gt=0,
        description="events per second each product may send through the collector (every route together); "
        "beyond it requests are answered 429 with Retry-After; unset = no limit",
    )
    collector_rate_burst_s: float = Field(
        10.0, gt=0, description="seconds of the rate limit a product may send at once (at least one full request)"
    )
    collector_max_in_flight: int = Field(
        256,
        ge=1,
        description="requests the collector works on at once; beyond, 503 with Retry-After at once, before the body "
        "is read (load is shed instead of queued: memory and latency stay bounded)",
    )
    collector_max_in_flight_per_key: int = Field(
        64,
        ge=1,
        description="of those, requests one sender (one Authorization header) may have at once; beyond, 503: one "
        "flooding sender cannot take the others' share",
    )
    collector_mapping_file: Path | None = Field(
        None,
        description="YAML file that overrides how the standards' routes (OTLP, Segment, PostHog) map to events: "
        "service.name to product, conversion goals, survey names (README: Speaking the standards)",
    )


class AlertSettings(BaseModel):
    """The alert rules, how often they run, and where notifications go."""

    model_config = _SECTION

    alert_rules_dir: Path | None = Field(
        None, description="folder of alert rule files (*.yaml); unset = the shipped rule set in alerts/rules"
    )
    alert_eval_interval_s: float = Field(
        60.0, gt=0, description="how often the evaluator runs a rule group that sets no interval of its own"
    )
    alert_resend_delay_s: float = Field(60.0, gt=0, description="re-send a firing alert to Alertmanager this often")
    health_interval_s: float = Field(
        300.0, gt=0, description="how often the leader computes and stores release verdicts and scorecards"
    )
    alertmanager_url: str | None = Field(
        None,
        description="Alertmanager base URL, e.g. http://127.0.0.1:9093, or a comma-separated list (an HA pair "
        "or more): every alert goes to every Alertmanager, as Prometheus sends",
    )
    alert_webhook_url: SecretStr | None = Field(
        None, description="generic webhook that receives every notification as JSON (may carry a token)"
    )
    grafana_url: str | None = Field(
        None, description="Grafana base URL; when set, notifications link to the Grafana panel instead"
    )

    @field_validator("alertmanager_url")
    @classmethod
    def _http_url_list(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        urls = [u.strip() for u in v.split(",")]
        for u in urls:
            parts = urlsplit(u)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"each entry must be an http(s) URL such as http://127.0.0.1:9093 (got {u!r})")
        if len({u.rstrip("/") for u in urls}) != len(urls):
            raise ValueError("an Alertmanager is listed twice: it would get every alert twice")
        return ",".join(urls)

    @property
    def alertmanager_urls(self) -> tuple[str, ...]:
        """Every Alertmanager to send to (``PULSE_ALERTMANAGER_URL``, split at commas)."""
        return tuple(self.alertmanager_url.split(",")) if self.alertmanager_url else ()


class Settings(  # pydantic orders fields from the last base first: Kafka's come first, as in the README
    BaseSettings,
    AlertSettings,
    CollectorSettings,
    WebSettings,
    WorkerSettings,
    IngestSettings,
    StoreSettings,
    KafkaSettings,
):
    """All settings of ProductPulse: every section, with their defaults in one place each."""

    model_config = SettingsConfigDict(env_prefix="PULSE_", frozen=True, extra="ignore")

    def to_env(self) -> dict[str, str]:
        """These settings as PULSE_* variables, to hand to a child process."""
        env = {}
        for name, value in self:
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"PULSE_{name.upper()}"] = str(value)
        return env


def describe_invalid(exc: ValidationError) -> list[str]:
    """One line per problem, naming the environment variable: ``PULSE_TOPIC_PARTITIONS: Input should be ...``."""
    lines = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        name = f"PULSE_{field.upper()}: " if field else ""
        given = err.get("input")
        shown = (
            ""
            if not field or any(s in field for s in ("secret", "password", "dsn", "key", "token", "webhook"))
            else f" (got {given!r})"
        )
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}{message}{shown if not isinstance(given, dict) else ''}")
    return lines


class InvalidSettings(PulseError, ValueError):
    """Settings that failed validation, as one line per problem (``describe_invalid``), joined by "; "."""

    @classmethod
    def of(cls, exc: ValidationError) -> InvalidSettings:
        return cls("invalid settings: " + "; ".join(describe_invalid(exc)))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
