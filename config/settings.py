"""Deployment settings (where things are), read once from ``PSEUDO_*`` environment variables.

The *policy* (what is kept) lives in a policy file; these settings say where the broker, topics, key
file, geo databases and state are. Secrets are ``SecretStr`` and print masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from transforms.errors import ConfigError

ENV_PREFIX = "PSEUDO_"
DAY_MS = 86_400_000


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(ge=1, le=1024)
    retention_ms: int = Field(ge=-1)
    compacted: bool = False  # keep the latest value per key (progress records) instead of deleting by age
    # None: the cluster's default.replication.factor, and the broker's min.insync.replicas (pipeline/topics.py).
    replication_factor: int | None = Field(None, ge=1, le=32)
    min_insync_replicas: int | None = Field(None, ge=1, le=32)


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
KAFKA_PREFIX = "PSEUDO_KAFKA_"


class KafkaConnection(BaseModel):
    """How every Kafka client of the product connects (``PSEUDO_KAFKA_*``); pipeline/kafka_clients.py builds them.

    Secrets are read from files (``*_FILE``) so that they stay out of the environment, process listings and
    ``repr``; ``PSEUDO_KAFKA_SASL_PASSWORD`` exists for platforms that inject secrets as variables, and prints masked.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password_file: Path | None = None
    sasl_password: SecretStr | None = None
    # OAUTHBEARER: "package.module:callable" returning an aiokafka AbstractTokenProvider (e.g. for MSK IAM).
    sasl_oauth_token_provider: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password_file: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _complete(self) -> KafkaConnection:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError("PSEUDO_KAFKA_SASL_MECHANISM: required with a SASL security protocol")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError("PSEUDO_KAFKA_SASL_MECHANISM: set, but the security protocol has no SASL")
        if self.sasl_mechanism == "OAUTHBEARER":
            if not self.sasl_oauth_token_provider:
                raise ValueError("PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER: required with OAUTHBEARER")
        elif sasl:
            if not self.sasl_username:
                raise ValueError("PSEUDO_KAFKA_SASL_USERNAME: required with PLAIN and SCRAM")
            if (self.sasl_password_file is None) == (self.sasl_password is None):
                raise ValueError(
                    "PSEUDO_KAFKA_SASL_PASSWORD_FILE (or PSEUDO_KAFKA_SASL_PASSWORD): exactly one is needed"
                )
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("PSEUDO_KAFKA_SSL_CERT_FILE and PSEUDO_KAFKA_SSL_KEY_FILE: give both or neither")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ssl_ca_file or self.ssl_cert_file):
            raise ValueError("PSEUDO_KAFKA_SSL_*: set, but the security protocol has no TLS")
        for name in ("sasl_password_file", "ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{KAFKA_PREFIX}{name.upper()}: no such file: {path}")
        return self


class Settings(BaseModel):
    """Validated once at start-up; ``from_env`` reads ``PSEUDO_<FIELD NAME IN UPPER CASE>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = Field("pseudonymizer", pattern=r"^[A-Za-z0-9._-]+$")
    # Topics. Retention per purpose: raw input is personal data (short); quarantine long enough to fix
    # a parser and replay; analytics/abuse as long as their consumers need them.
    input_topic: str = "logs.raw"
    analytics_topic: str = "logs.analytics"
    abuse_topic: str = "logs.abuse"
    quarantine_topic: str = "logs.quarantine"
    aggregates_topic: str = "logs.analytics.aggregates"
    partitions: int = Field(4, ge=1, le=1024)
    # Replication of the topics the worker creates (existing ones are left as they are): unset takes the cluster's
    # default.replication.factor; more than the brokers that are up stops the creation naming the setting. A
    # min.insync.replicas topic config when set (unset: the broker's): with acks=all, a write needs that many copies.
    replication_factor: int | None = Field(None, ge=1, le=32)
    min_insync_replicas: int | None = Field(None, ge=1, le=32)
    # The k-anonymous release generalizes the units of each release partition together: one partition (the
    # default) sees every unit, so its classes are the finest; more spread the release over processes, each
    # with fewer units to share profiles with (coarser values, more suppressed). Held rows are kept long enough
    # to rebuild the oldest open window (a day of aggregates) after a restart.
    release_partitions: int = Field(1, ge=1, le=1024)
    release_retention_days: float = Field(3, gt=0)
    # An input idle this long lets wall-clock time close windows that ended max_delay_s ago (a replay of old
    # logs: everything it holds).
    release_idle_close_s: float = Field(5.0, gt=0)
    input_retention_days: float = Field(1, gt=0)
    analytics_retention_days: float = Field(30, gt=0)
    abuse_retention_days: float = Field(90, gt=0)
    quarantine_retention_days: float = Field(7, gt=0)
    # Keys: a file path (0600) or the keyring JSON itself (for secret managers that inject env vars).
    keys_file: Path | None = None
    keys: SecretStr | None = None
    policy: Path | None = None
    geo_city_db: Path | None = None
    geo_asn_db: Path | None = None
    data_dir: Path = Path("var/worker")
    # Detector state: a durable embedded store (RocksDB via rocksdict) with a changelog topic for recovery.
    # "memory://" keeps it in memory (tests); the changelog still restores it after a restart.
    store: str = Field("rocksdb://", pattern=r"^(rocksdb|memory)://$")
    observation_retention_days: float = Field(1, gt=0)
    detector_expire_interval_s: float = Field(60.0, gt=0)  # how often drained detector state is dropped
    # Event time across partitions (transforms/event_time.py; README "Delivery and recovery"). The detector applies
    # each subject's observations in event-time order once the watermark (the slowest input partition's event time
    # less event_time_disorder_s) has passed them; the ingest pauses partitions read more than align_max_ahead_s
    # ahead of the slowest (0: never); a partition at its log end for partition_idle_s stops holding event time back,
    # and so does an ingest (a writer of observations) the detector has not heard from for watermark_writer_timeout_s
    # (the detector also waits that long after a start, to hear every live one). A subject buffers at most
    # detector_max_buffered observations (the oldest are then applied early), and keeps its applied input positions
    # for detector_replay_horizon_s of event time after everything else of it is gone, so that a replay is still
    # recognised.
    event_time_disorder_s: float = Field(5.0, ge=0, le=3600)
    align_max_ahead_s: float = Field(60.0, ge=0)
    partition_idle_s: float = Field(1.0, gt=0, le=300)
    watermark_writer_timeout_s: float = Field(5.0, ge=1, le=300)
    detector_max_buffered: int = Field(10_000, ge=1, le=1_000_000)
    detector_replay_horizon_s: float = Field(3600.0, ge=0)
    # Standby copies of the detector table on other workers (faust's default is 1): each one replays another
    # worker's changelog all the time. 0 by default: a worker taking over partitions then restores their
    # state from the changelog first (README "Performance" has the measured cost of a standby).
    table_standby_replicas: int = Field(0, ge=0, le=3)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9309, ge=0, le=65535)  # 0 disables the /metrics endpoint
    # Beyond loopback the endpoint is served only with TLS, a bearer token, or both (pipeline/metrics.py): the
    # counters describe the traffic, and an open port is an open door. Files, so the secrets stay out of the env.
    metrics_tls_cert_file: Path | None = None
    metrics_tls_key_file: Path | None = None
    metrics_token_file: Path | None = None
    log_level: str = Field("info", pattern=r"^(crit|error|warn|info|debug)$")
    stats_interval_s: float = Field(30.0, gt=0)
    # Repeats of a log message (same logger, level, template, broker) within this interval are counted, and
    # written once per interval with the count (pipeline/log_limits.py); 0 writes every one.
    log_repeat_interval_s: float = Field(30.0, ge=0)
    # Consumer group membership of the worker's three groups (faust's, the ingest's, the release stage's): a worker
    # that stops heart-beating loses its partitions after the session timeout (faust's own default, 60 s, held the
    # output for a minute after a kill -9). A stable PSEUDO_GROUP_INSTANCE_ID per worker (a StatefulSet pod name)
    # makes it a static member: restarted within the session timeout, it gets its partitions back without a
    # rebalance. Two live workers must never share one (the broker fences the older).
    session_timeout_s: float = Field(10.0, ge=6, le=300)
    group_instance_id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    # Kafka Streams' processing.guarantee (pipeline/transactions.py; README "Delivery and recovery"): exactly_once
    # commits each ingest poll's outputs with its input offsets, and the detector's alerts with its state, in Kafka
    # transactions, and every consumer reads read_committed. pipeline/kafka_clients.py turns it into client options.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # Throughput knobs (README "Performance"): raw records per ingest poll, observation messages per detector
    # batch and how long that batch may wait to fill (latency at low rates), producer linger and batch bytes.
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_within_s: float = Field(0.02, gt=0, le=5)
    max_poll_records: int = Field(2000, ge=1, le=100_000)
    producer_linger_ms: int = Field(5, ge=0, le=1000)
    producer_batch_bytes: int = Field(262_144, ge=16_384, le=16_777_216)
    compression: str = Field("lz4", pattern=r"^(none|gzip|lz4|zstd|snappy)$")
    # "auto": uvloop when installed (the "fast" extra), else asyncio; asyncio by default: uvloop made no
    # measurable difference to the worker (README "Performance").
    event_loop: str = Field("asyncio", pattern=r"^(auto|uvloop|asyncio)$")
    # Audit of reveal, quarantine decrypt and lookup (pipeline/audit.py): a hash-chained file, and a copy of every
    # entry on its own topic, produced before anything is released. Turning the topic copy off takes an explicit
    # false (not an empty variable, which a broken template could leave behind).
    audit_file: Path = Path("audit.jsonl")
    audit_topic: str = Field("logs.audit", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    audit_to_kafka: bool = True
    audit_timeout_s: float = Field(30.0, gt=0, le=600)  # per Kafka call; then the tool stops, releasing nothing
    kafka: KafkaConnection = KafkaConnection()  # PSEUDO_KAFKA_*: TLS and SASL of every client

    @field_validator("min_insync_replicas")
    @classmethod
    def _at_most_the_replicas(cls, value: int | None, info: ValidationInfo) -> int | None:
        replication = info.data.get("replication_factor")
        if value is not None and replication is not None and value > replication:
            # Every acks=all write would fail with NOT_ENOUGH_REPLICAS.
            raise ValueError(
                f"PSEUDO_MIN_INSYNC_REPLICAS: {value} is more than PSEUDO_REPLICATION_FACTOR {replication}"
            )
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            if name == "kafka":
                continue
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        kafka = {
            name: environ[KAFKA_PREFIX + name.upper()]
            for name in KafkaConnection.model_fields
            if environ.get(KAFKA_PREFIX + name.upper())
        }
        if kafka:
            values["kafka"] = kafka
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            where = sorted({_variable(e["loc"]) for e in exc.errors()})
            # A value error of the connection names its own variables (the message carries no value, no secret).
            reasons = sorted(
                {e["msg"].removeprefix("Value error, ") for e in exc.errors() if e["type"] == "value_error"}
            )
            detail = f" ({'; '.join(reasons)})" if reasons else ""
            raise ConfigError(f"invalid setting(s): {', '.join(where)}{detail}") from None

    @property
    def release_topic(self) -> str:
        """Internal: analytics rows held for the k-anonymous release, keyed by unit (pseudonyms only)."""
        return f"{self.app_id}-release"

    @property
    def release_progress_topic(self) -> str:
        """Internal, compacted: per release partition, how far it has released (pipeline/release.py)."""
        return f"{self.app_id}-release-progress"

    @property
    def observation_topic(self) -> str:
        """Internal repartition topic: pseudonymized observations keyed by security pseudonym."""
        return f"{self.app_id}-observations"

    def topic_specs(self) -> list[TopicSpec]:
        def spec(name: str, days: float) -> TopicSpec:
            return TopicSpec(name=name, partitions=self.partitions, retention_ms=int(days * DAY_MS), **self._replicas)

        return [
            spec(self.input_topic, self.input_retention_days),
            spec(self.analytics_topic, self.analytics_retention_days),
            spec(self.abuse_topic, self.abuse_retention_days),
            spec(self.quarantine_topic, self.quarantine_retention_days),
            spec(self.observation_topic, self.observation_retention_days),
            spec(self.aggregates_topic, self.analytics_retention_days),
            TopicSpec(
                name=self.release_topic,
                partitions=self.release_partitions,
                retention_ms=int(self.release_retention_days * DAY_MS),
                **self._replicas,
            ),
            TopicSpec(
                name=self.release_progress_topic, partitions=1, retention_ms=-1, compacted=True, **self._replicas
            ),
        ]

    @property
    def _replicas(self) -> dict[str, int | None]:
        return {"replication_factor": self.replication_factor, "min_insync_replicas": self.min_insync_replicas}

    @property
    def compression_type(self) -> str | None:
        """The producers' ``compression_type`` (None for "none")."""
        return None if self.compression == "none" else self.compression

    @property
    def bootstrap(self) -> str:
        """``host:port[,host:port]`` for plain Kafka clients (faust takes the ``kafka://`` URL)."""
        return ",".join(part.removeprefix("kafka://") for part in self.broker.split(";"))


ENV_VARS: frozenset[str] = frozenset(ENV_PREFIX + name.upper() for name in Settings.model_fields)


def _variable(loc: tuple[int | str, ...]) -> str:
    """The variable a validation error is about: ``("kafka", "ssl_ca_file")`` -> PSEUDO_KAFKA_SSL_CA_FILE."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "kafka":
        return KAFKA_PREFIX + "_".join(parts[1:]).upper() if parts[1:] else "PSEUDO_KAFKA_*"
    return ENV_PREFIX + ".".join(parts).upper()
