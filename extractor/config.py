"""One typed settings object, read from environment variables (prefix ``EXTRACTOR_``) and an optional file.

Every command reads its settings through :func:`load_settings`; nothing else reads the environment.
A setting's environment variable is its upper-cased name with the prefix, e.g. ``EXTRACTOR_BOOTSTRAP_SERVERS``.
An optional config file (``EXTRACTOR_CONFIG_FILE`` or ``--config``; TOML, YAML or JSON with the same keys)
gives defaults that the environment overrides.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LEXICON_DIR = REPO_ROOT / "lexicons"
# written by `python -m services up` (mode 0600): the local MongoDB's URI with its generated credentials
LOCAL_MONGO_URI_FILE = REPO_ROOT / ".services" / "secrets" / "mongo.uri"
DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017"
DEFAULT_MODEL = str(REPO_ROOT / "models" / "ner-clinical")


class Settings(BaseSettings):
    """All settings of the extractor service. Frozen: build a new one to change anything."""

    model_config = SettingsConfigDict(env_prefix="EXTRACTOR_", frozen=True, extra="forbid")

    # --- extraction chain -------------------------------------------------------------------------
    lexicon_dir: Path = DEFAULT_LEXICON_DIR  # the editable lexicons, rules and triggers (workers reload edits)
    ner_model: str = Field(DEFAULT_MODEL, description="path of a spaCy model dir or an installed package name")
    stages: tuple[str, ...] = ("regex", "lexicon", "ner")  # the chain's stages, in order (JSON list in the env)
    chain_mode: Literal["cascade", "merge"] = "cascade"  # cascade: NER only where earlier stages left words
    ner_batch_size: int = 256  # sentences per spaCy batch
    max_text_chars: int = 20_000  # longer entries are dead-lettered as too_long
    min_confidence: float = Field(0.2, ge=0.0, le=1.0, description="drop entities below this calibrated confidence")
    # backfill: Spark's Python daemon loads the chain before it forks the workers (one load per executor, shared)
    backfill_preload_chain: bool = True

    # --- Kafka ------------------------------------------------------------------------------------
    bootstrap_servers: str = "127.0.0.1:9092"  # Kafka brokers
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str | None = None  # e.g. SCRAM-SHA-512, PLAIN, OAUTHBEARER
    sasl_username: str | None = None  # SASL user
    sasl_password: SecretStr | None = None  # SASL password (never logged); or sasl_password_file
    sasl_password_file: Path | None = Field(None, description="a file holding the SASL password (a mounted secret)")
    ssl_ca_location: str | None = None  # CA certificate file that signed the brokers' certificates
    input_topic: str = "medical-entries"  # raw entries (the producer writes, the workers read)
    processed_topic: str = "processed-entries"  # enriched documents (the workers write, the MongoDB writer reads)
    dlq_topic: str = "dlq-topic"  # dead letters: bad rows, poison messages, unresolved entries, with the reason
    # partitions of the input and processed topics when `topics` creates them (= most useful workers): 6 divides
    # evenly among 1, 2, 3 or 6 workers, so that none drains a backlog alone (with 3, one of 2 workers held two)
    input_partitions: int = 6
    group_id: str = "extractor-workers"  # the workers' consumer group
    # static group membership (KIP-345), for a worker or a sink: restarted with the same id (a pod name, say) it gets
    # its partitions back at once instead of waiting for the session timeout and a rebalance
    group_instance_id: str | None = None
    sink_group_id: str = "extractor-mongo-sink"  # the project's sink's consumer group
    batch_size: int = 500  # records per poll and per chain call
    # worker: characters of entry text per chain call; long notes make smaller polls (batch_size adapts) and
    # the consumer stays in its group while a batch runs (paused partitions are polled between chunks)
    max_batch_chars: int = Field(200_000, ge=1_000)
    max_poll_interval_ms: int = Field(300_000, ge=10_000)  # the consumer's max.poll.interval.ms
    poll_timeout_s: float = 0.5  # how long a poll waits for records
    producer_linger_ms: int = 20  # producer batching delay
    # largest message the producer sends (the broker's own limit, read at start, wins when smaller); a row whose
    # message would be larger is dead-lettered as too_large, without its bytes
    max_message_bytes: int = Field(1_000_000, ge=1024)
    # the whole run stops (exit 3) when no broker answers for this long
    producer_unreachable_timeout_s: float = 30.0
    compression_type: str = "lz4"  # producer compression
    lexicon_reload_s: float = 10.0  # worker: how often to call chain.reload_if_changed(); 0 = never
    # worker: follow lexicon_updates_topic (the review console's published edits) and write them into lexicon_dir
    follow_lexicon_updates: bool = True
    sink_max_backoff_s: float = 10.0  # sink: cap of the exponential backoff while MongoDB is down
    dlq_replay_group_id: str | None = None  # default: "<group_id>-dlq-replay"

    # --- CSV producer -----------------------------------------------------------------------------
    csv_patient_id_column: str = "patient_id"  # the producer's CSV columns
    csv_text_column: str = "medical_entry"  # the entry text column
    csv_timestamp_column: str = "timestamp"  # the entry time column (ISO 8601)

    # --- MongoDB ----------------------------------------------------------------------------------
    mongo_uri: SecretStr = Field(SecretStr(DEFAULT_MONGO_URI), description=(
        "with credentials; when unset: the URI in mongo_uri_file, else the local servers' (.services/secrets/"
        "mongo.uri, written by `python -m services up`) if present, else mongodb://127.0.0.1:27017"))
    mongo_uri_file: Path | None = Field(None, description="a file holding the MongoDB URI (a mounted secret)")
    mongo_database: str = "medical"  # where the documents go
    mongo_collection: str = "processed_entries"  # the documents' collection
    # which process writes processed-entries into MongoDB in `make demo` and `bench pipeline`: Kafka Connect's
    # MongoDB sink connector (the reference design's) or the project's own `python -m extractor sink`
    writer: Literal["connect", "sink"] = "connect"
    connect_url: str = "http://127.0.0.1:8083"  # Kafka Connect's REST API (demo, bench, tests)
    connector_name: str = "mongo-sink-connector"  # the MongoDB sink connector of connectors/mongo-sink.json

    # --- archive of raw entries (python -m extractor archive) --------------------------------------
    # where raw records go: gs://BUCKET/PREFIX, file:///dir or s3://BUCKET/PREFIX (fsspec; gcsfs for gs://)
    archive_url: str = "gs://clinical-extractor-archive"
    archive_topics: str = "medical-entries"  # comma-separated topics to archive (add dlq-topic to keep it too)
    archive_group_id: str = "extractor-archiver"  # the archiver's consumer group
    archive_flush_bytes: int = Field(16_000_000, ge=1)  # buffered record bytes that trigger an upload
    archive_flush_s: float = Field(60.0, gt=0)  # oldest buffered record's age that triggers an upload
    archive_max_object_bytes: int = Field(128_000_000, ge=1)  # larger batches are split into several objects
    # a GCS emulator's URL (the local one: http://127.0.0.1:4443); unset: STORAGE_EMULATOR_HOST, else real GCS
    # with Application Default Credentials (Workload Identity on GKE)
    gcs_endpoint: str | None = None
    gcs_project: str | None = None  # GCS project (real GCS only)

    # --- review console (python -m extractor review) -----------------------------------------------
    review_host: str = "127.0.0.1"  # the console listens here; 0.0.0.0 needs TLS (or --insecure-public)
    review_port: int = 8088
    review_secrets_dir: Path = REPO_ROOT / ".services" / "secrets"  # review-password (generated, mode 0600)
    review_session_s: int = Field(3600, ge=60)  # a signed-in session expires after this many seconds idle
    review_low_confidence: float = Field(0.6, ge=0.0, le=1.0)  # the low-confidence queue: entities below this
    review_group_id: str = "extractor-review"  # the console's consumer group on the dead-letter topic
    reviews_collection: str = "reviews"  # reviewers' decisions (entry id, reviewer, time, decision, version)
    dead_letters_collection: str = "dead_letters"  # the console's copy of the dead-letter topic (queue pages)
    lexicon_edits_collection: str = "lexicon_edits"  # rows decided by reviewers, pending or published
    review_audit_collection: str = "review_audit"  # who changed what and when (entry ids, never text)
    # compacted topic of published lexicon edits: workers on any host follow it and reload without a restart
    lexicon_updates_topic: str = "lexicon-updates"

    # --- observability ----------------------------------------------------------------------------
    metrics_port: int = 0  # Prometheus /metrics port of the worker, sink or connect-status; 0 = none
    log_level: str = "INFO"  # patient text is never logged at INFO or above

    @model_validator(mode="before")
    @classmethod
    def _sasl_password_from_file(cls, values: Any) -> Any:
        """An explicit sasl_password wins; else sasl_password_file (must exist), as Kubernetes mounts a secret."""
        if not isinstance(values, dict) or values.get("sasl_password") or not values.get("sasl_password_file"):
            return values
        path = Path(values["sasl_password_file"])
        if not path.is_file():
            raise ValueError(f"sasl_password_file {path} does not exist")
        return {**values, "sasl_password": path.read_text(encoding="utf-8").strip()}

    @model_validator(mode="before")
    @classmethod
    def _uri_from_file(cls, values: Any) -> Any:
        """An explicit mongo_uri wins; else mongo_uri_file (must exist); else the local servers' file if any."""
        if not isinstance(values, dict) or values.get("mongo_uri"):
            return values
        given = values.get("mongo_uri_file")
        path = Path(given) if given else LOCAL_MONGO_URI_FILE
        if given and not path.is_file():
            raise ValueError(f"mongo_uri_file {path} does not exist")
        if path.is_file():
            uri = path.read_text(encoding="utf-8").strip()
            if not uri:
                raise ValueError(f"mongo_uri_file {path} is empty")
            return {**values, "mongo_uri": uri}
        return values

    def kafka_common(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and admin clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def redacted(self) -> dict[str, Any]:
        """Effective settings for the start-up log line, secrets hidden."""
        d = self.model_dump(mode="json")
        d["sasl_password"] = "***" if self.sasl_password else None
        uri = self.mongo_uri.get_secret_value()
        d["mongo_uri"] = _redact_uri(uri)
        return d


def _redact_uri(uri: str) -> str:
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


def _read_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
        return data or {}
    return json.loads(text)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from (lowest first) defaults, the config file, the environment, then ``overrides``."""
    import os

    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get("EXTRACTOR_CONFIG_FILE")
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        file_values = _read_file(p)
    env_keys = {k[len("EXTRACTOR_") :].lower() for k in os.environ if k.startswith("EXTRACTOR_")}
    merged = {k: v for k, v in file_values.items() if k not in env_keys}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**merged)
