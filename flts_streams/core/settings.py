"""Service settings: the only module that reads the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FLTS_"
#: Faust reads its own settings with this prefix (e.g. FLTS_BROKER_URL, FLTS_WEB_PORT).
FAUST_ENV_PREFIX = "FLTS"
APP_ID = "flts-streams"


#: Libraries' switches the worker sets unless the environment sets them. Why: mode logs the worker's stderr at
#: WARNING, and MLflow draws a progress bar on it for every artifact download (3-8 WARNING lines a model loaded).
WORKER_LIBRARY_ENV = (("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),)


def set_worker_library_env() -> None:
    """Set WORKER_LIBRARY_ENV's switches in this process, keeping any the environment already has."""
    for name, value in WORKER_LIBRARY_ENV:
        os.environ.setdefault(name, value)


def child_env(overrides: dict[str, str] | None = None, *, inherit_flts: bool = True) -> dict[str, str]:
    """Environment for a child process: ours plus overrides (optionally without inherited FLTS_* vars)."""
    env = {k: v for k, v in os.environ.items() if inherit_flts or not k.startswith(ENV_PREFIX)}
    env.update(overrides or {})
    return env


class _Group(BaseModel):
    """Base of nested settings groups: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PathSettings(_Group):
    """Where local state lives (RocksDB, MLflow, objects, logs)."""

    var_dir: Path = Field(Path("var"), description="Root of all local state")


class TopicSettings(_Group):
    """Kafka topic names (changing them changes the wire contract)."""

    inference: str = Field("inference-data", description="Claim-check messages")
    training: str = Field("model-training", description="Model training events")
    results: str = Field("inference-results", description="Forecasts for claims")
    selected: str = Field("model-selected", description="Promotion decisions")
    training_requests: str = Field("training-requests", description="Retraining requests of the drift detector")
    dead_letter: str = Field("flts-dead-letter", description="Messages that could not be processed")
    partitions: int = Field(4, ge=1, description="Partitions of topics this service creates")


class ServingSettings(_Group):
    """HTTP /predict behaviour."""

    default_identifier: str = Field("PobleSec", description="Identifier used when a request names none")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413")
    max_rows: int = Field(20_000, ge=1, description="Most rows accepted in one request's data")
    # 128, not 64 (2026-12-07): at 64 connections the drain then starts from the flush, not at 32 queued; with
    # the cheap MLP forward fewer, larger batches won (docs/BENCHMARKS.md, 1.03-1.06x in three A/Bs).
    max_batch_size: int = Field(
        128, ge=1, description="Most windows coalesced into one model forward (half as many queued start one at once)"
    )
    max_batch_wait_ms: float = Field(2.0, ge=0, description="Longest wait to fill a batch")
    max_in_flight: int = Field(256, ge=1, description="Concurrent predictions; beyond it 429")
    request_timeout_s: float = Field(10.0, gt=0, description="Default per-request deadline (504)")
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 429")
    torch_threads: int = Field(1, ge=1, description="torch.set_num_threads for inference")
    admin_token: SecretStr | None = Field(None, description="Bearer token for /admin routes (unset: disabled)")
    idle_timeout_s: float = Field(
        10.0, gt=0, description="A connection idle, or still sending its request headers, this long is closed"
    )
    body_timeout_s: float = Field(20.0, gt=0, description="Longest wait for a request body to arrive whole (then 408)")
    max_buffered_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Request bodies being received at once, in bytes (beyond: 429)"
    )
    ready_requires_broker: bool = Field(
        True, description="/readyz is 503 while the broker is unreachable (beyond the grace)"
    )
    broker_grace_s: float = Field(
        10.0, ge=0, description="How long the broker may be unreachable before it counts as an outage"
    )


class StreamingSettings(_Group):
    """Claim processing behaviour."""

    batch_size: int = Field(256, ge=1, description="Claims taken per micro-batch")
    batch_timeout_s: float = Field(0.05, gt=0, description="Longest wait to fill a micro-batch")
    observe_interval_s: float = Field(5.0, gt=0, description="How often buffer depth and consumer lag are sampled")
    frame_max_rows: int = Field(1_000, ge=1, description="Newest rows of a claim's frame kept in latest_frames")
    log_prefix: str = Field("inference-logs", description="Key prefix of prediction-log objects in the default bucket")
    object_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest claim object read (bytes); larger ones are dead letters"
    )
    object_max_rows: int = Field(50_000, ge=1, description="Most rows decoded from a claim object (~69 days at 2 min)")
    object_max_columns: int = Field(256, ge=2, description="Most columns decoded from a claim object")
    object_concurrency: int | None = Field(
        None,
        ge=1,
        description="Thread calls reading claim objects, and writing prediction logs, at once per micro-batch "
        "(empty: 1 for file://, where more only contend for the GIL; 8 for s3://, whose requests wait on the network)",
    )
    rocksdb_write_buffer_mb: int = Field(
        4, ge=1, description="RocksDB memtable per table partition (MB; two per partition at most)"
    )
    rocksdb_block_cache_mb: int = Field(8, ge=1, description="RocksDB read cache per table partition (MB)")
    dead_letter_prefix: str = Field(
        "dead-letters", description="Key prefix, in the default bucket, of originals too large to dead-letter whole"
    )
    retry_backoff_s: float = Field(
        0.2, ge=0, description="First retry delay on transient errors; doubles, capped at 30 s"
    )
    stop_deadline_s: float = Field(
        45.0,
        gt=0,
        description="After SIGTERM, exit without a final commit when the stop has not finished by then "
        "(a broker outage holds it); keep it below the pod's termination grace period",
    )


class AccuracySettings(_Group):
    """Live accuracy: forecasts issued for claims, scored against the actuals later claims bring."""

    enabled: bool = Field(True, description="Remember claim forecasts and score them (forecast_accuracy table)")
    forecasts_kept: int = Field(
        48,
        ge=1,
        le=1000,
        description="Newest forecasts kept per identifier for scoring (about 0.5 KB each for one target)",
    )
    summary_worst: int = Field(10, ge=1, le=1000, description="Identifiers listed by GET /accuracy, worst skill first")
    remember_cached: bool = Field(
        False,
        description="Also remember forecasts answered to GET /predict/{id} that differ from the claim's (e.g. a newer "
        "model): scored when the identifier's next claim brings actuals",
    )
    drift_window_h: float = Field(6.0, gt=0, le=24, description="Hours of scored steps the drift detector judges")
    drift_min_steps: int = Field(300, ge=1, description="Scored steps in that window before the detector judges")
    drift_mae_factor: float = Field(
        2.0, gt=1, description="Drift: live MAE above this many times the model's validation MAE"
    )
    drift_skill_below: float = Field(0.0, le=1, description="Drift: live skill vs persistence below this")
    drift_cooldown_s: float = Field(
        6 * 3600.0, ge=0, description="Least time between two training requests for one identifier"
    )


class ModelSettings(_Group):
    """MLflow tracking and model naming."""

    tracking_uri: str = Field("", description="MLflow tracking URI (empty: sqlite under var_dir)")
    registry_prefix: str = Field("flts-", description="Registered model name = prefix + identifier")
    champion_alias: str = Field("champion", description="Registry alias of the serving model")
    default_uri: str = Field("", description="Fallback model URI for identifiers without a champion")
    global_name: str = Field(
        "flts-global",
        description="Registered name of the global model: its champion answers identifiers without their own",
    )
    max_loaded: int = Field(
        1000, ge=1, description="Identifiers' own models kept in memory (least recently used unloaded beyond)"
    )
    max_concurrent_loads: int = Field(2, ge=1, description="Models loaded at once (first requests of many identifiers)")
    follow_interval_s: float = Field(
        2.0, gt=0, description="How often every worker syncs its models with the champions table"
    )


class TrainingSettings(_Group):
    """Training run by this process (`flts train`, the demo model of `flts dev`)."""

    torch_threads: int = Field(0, ge=0, description="torch threads for training (0: half the cores, at least 1)")

    def threads(self) -> int:
        """torch_threads, or half the machine's cores (at least 1) when 0."""
        return self.torch_threads or max(1, (os.cpu_count() or 2) // 2)


class RetrainingSettings(_Group):
    """The trainer (`flts trainer`): retrains identifiers the drift detector names, from their claim objects."""

    lookback_days: float = Field(14.0, gt=0, description="Days of an identifier's claims its retraining reads")
    min_rows: int = Field(1440, ge=100, description="Fewest distinct rows to retrain on (1,440: two days at 2 min)")
    epochs: int = Field(20, ge=1, description="Training epochs of a retraining")
    members: int = Field(1, ge=1, description="Ensemble members of a retraining (more: better, slower)")
    group_id: str = Field("flts-trainer", description="Consumer group of the trainers on training-requests")


class StorageSettings(_Group):
    """Object store for claims data and prediction logs."""

    url: str = Field("", description="file://DIR or s3://HOST:PORT (empty: file:// under var_dir)")
    bucket: str = Field("flts", description="Default bucket")
    allowed_buckets: tuple[str, ...] = Field((), description="Buckets claims may name (empty: only the default)")
    access_key: SecretStr | None = Field(None, description="S3 access key")
    secret_key: SecretStr | None = Field(None, description="S3 secret key")
    secure: bool = Field(False, description="Use TLS for s3://")
    region: str | None = Field(None, description="S3 region")
    timeout_s: float = Field(10.0, gt=0, description="S3 connect/read timeout")


class EmbeddedSettings(_Group):
    """Embedded-broker (Tansu) development profile; never used in production."""

    enabled: bool = Field(False, description="Apply the Tansu workarounds (set by `flts dev` and the tests)")
    session_timeout_s: float = Field(8.0, gt=0, description="Consumer session timeout (Tansu holds joins for half)")
    heartbeat_s: float = Field(2.0, gt=0, description="Consumer heartbeat interval (at most a third of the timeout)")
    single_record_batches: bool = Field(
        True,
        description="One record per produced batch: Tansu's end offsets stay exact, which recovery needs "
        "(off: a throughput profile for benchmarks only)",
    )


class Settings(BaseSettings):
    """All flts settings; env prefix FLTS_, nested groups joined with __."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    log_repeat_s: float = Field(
        10.0,
        ge=0,
        description="The broker client's (aiokafka's) repeated log lines: the first of a kind per this many seconds, "
        "the next one shown counts those held back, or a `repeats held back` line two intervals on (0: every line)",
    )
    paths: PathSettings = PathSettings()
    topics: TopicSettings = TopicSettings()
    serving: ServingSettings = ServingSettings()
    streaming: StreamingSettings = StreamingSettings()
    accuracy: AccuracySettings = AccuracySettings()
    model: ModelSettings = ModelSettings()
    training: TrainingSettings = TrainingSettings()
    retraining: RetrainingSettings = RetrainingSettings()
    storage: StorageSettings = StorageSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()

    @property
    def mlflow_tracking_uri(self) -> str:
        """Tracking URI, defaulting to a SQLite file under var_dir."""
        if self.model.tracking_uri:
            return self.model.tracking_uri
        return f"sqlite:///{(self.paths.var_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> Path:
        """Artifact root used when the tracking store is local."""
        return (self.paths.var_dir / "mlartifacts").resolve()

    @property
    def storage_url(self) -> str:
        """Object store URL, defaulting to a directory under var_dir."""
        return self.storage.url or f"file://{(self.paths.var_dir / 'objects').resolve()}"

    def object_concurrency(self) -> int:
        """Thread calls at once for a micro-batch's objects: the setting, else by the store (see its description)."""
        if self.streaming.object_concurrency is not None:
            return self.streaming.object_concurrency
        return 1 if self.storage_url.startswith("file:") else 8

    def broker_url(self) -> str:
        """Faust's broker setting as the worker sees it (FLTS_BROKER_URL, else our default), built without the app."""
        return os.environ.get(f"{FAUST_ENV_PREFIX}_BROKER_URL") or str(self.faust_defaults()["broker"])

    def worker_url(self) -> str:
        """The local worker's HTTP address (FLTS_WEB_HOST, FLTS_WEB_PORT, else our defaults), built without the app."""
        conf = self.faust_defaults()
        host = os.environ.get(f"{FAUST_ENV_PREFIX}_WEB_HOST") or conf["web_host"]
        port = os.environ.get(f"{FAUST_ENV_PREFIX}_WEB_PORT") or conf["web_port"]
        return f"http://{host}:{port}"

    def faust_defaults(self) -> dict[str, Any]:
        """Faust settings this service defaults (FLTS_* Faust env vars still override them)."""
        conf: dict[str, Any] = {
            "broker": "kafka://127.0.0.1:9092",
            "store": "rocksdb://",
            "datadir": str(self.paths.var_dir / "faust"),
            "web_host": "127.0.0.1",
            # Loopback unless told otherwise (the container image sets FLTS_WEB_BIND=0.0.0.0).
            "web_bind": "127.0.0.1",
            "web_port": 6066,
            "topic_partitions": self.topics.partitions,
            "topic_replication_factor": 1,
            "processing_guarantee": "at_least_once",
            "consumer_auto_offset_reset": "earliest",
            "stream_buffer_maxsize": 4096,
            "broker_commit_interval": 1.0,
            "web_enabled": True,
            # faust.Worker without its spinner, which sets the root logger to DEBUG at -l warn (the module says why).
            "Worker": "flts_streams.kafka.faust_worker:FltsWorker",
            # Faust's table manager minus a 1 s sleep before the group join (the module says why).
            "TableManager": "flts_streams.kafka.table_manager:PromptTableManager",
        }
        if self.embedded.enabled:
            conf.update(self.embedded_faust_overrides())
        return conf

    def rocksdb_options(self) -> dict[str, Any]:
        """Options of every table's RocksDB (a fresh dict: Faust's store pops keys from the one it is given).

        Faust opens one RocksDB per table and partition with 64 MB memtables (up to 3) and a 2 GB
        read cache each (faust/stores/rocksdb.py): with 3 tables x 4 partitions a 100k-claim burst
        over 2,000 identifiers grew a worker by ~1 GB, and reading 10,000 identifiers' frames took
        it to 2.3 GB (`flts bench claims`, `flts bench scale`). tests/test_tables pins those defaults.
        """
        s = self.streaming
        return {
            "write_buffer_size": s.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "block_cache_size": s.rocksdb_block_cache_mb * 2**20,
            "block_cache_compressed_size": s.rocksdb_block_cache_mb * 2**20,
        }

    def embedded_faust_overrides(self) -> dict[str, Any]:
        """Tansu workarounds (docs/ARCHITECTURE.md, "Known traps"): short sessions, one record per produced batch."""
        conf: dict[str, Any] = {
            "broker_session_timeout": self.embedded.session_timeout_s,
            "broker_heartbeat_interval": self.embedded.heartbeat_s,
            "broker_rebalance_timeout": self.embedded.session_timeout_s,
        }
        if self.embedded.single_record_batches:
            # Tansu's ListOffsets(latest) is off for multi-record batches: 1-byte
            # batches force one record per batch so end offsets are exact.
            conf |= {"producer_max_batch_size": 1, "producer_linger": 0.0}
        return conf
