"""Session fixtures: an embedded Tansu broker, a trained demo model, a real worker."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flts_streams.broker import EmbeddedBroker, ensure_topics, free_port, start_tansu
from flts_streams.settings import Settings
from tests.integration.harness import Worker

ADMIN_TOKEN = "s3cret-admin-token-for-tests"  # at least 16 characters, or the admin routes stay disabled
TOPICS = ("inference-data", "model-training", "inference-results", "model-selected", "flts-dead-letter")


def start_broker(log_dir: Path) -> EmbeddedBroker:
    """A fresh in-memory Tansu with the service topics."""
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = start_tansu("127.0.0.1", free_port(), log_dir / "tansu.log")
    ensure_topics(broker.bootstrap, TOPICS, Settings().topics.partitions)
    return broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[EmbeddedBroker]:
    b = start_broker(tmp_path_factory.mktemp("broker"))
    yield b
    b.stop()


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A var dir whose MLflow store holds a small demo champion; returns (var_dir, model URI)."""
    import torch

    from flts_streams.forecasting import packaging
    from flts_streams.forecasting.demo import demo_frame
    from flts_streams.forecasting.pipeline import train_and_register
    from flts_streams.forecasting.training import TrainConfig

    var = tmp_path_factory.mktemp("var")
    settings = Settings(paths={"var_dir": var})
    torch.set_num_threads(settings.training.threads())  # as `flts train`: torch's default ran 3.5-5x slower on a busy machine
    packaging.configure(settings.mlflow_tracking_uri)
    packaging.ensure_experiment("flts-training", settings.mlflow_artifact_root)
    data = var / "demo.csv"
    demo_frame(days=4, seed=5).to_csv(data, index=False)
    train_and_register(data, "demo", TrainConfig(epochs=2, hidden_size=16, synthetic_data=True), registry_prefix="flts-", alias="champion", progress=False)
    return var, "models:/flts-demo@champion"


@pytest.fixture(scope="session")
def worker(broker, trained) -> Iterator[Worker]:
    var, uri = trained
    w = Worker(var, broker.url, {"FLTS_MODEL__DEFAULT_URI": uri, "FLTS_SERVING__ADMIN_TOKEN": ADMIN_TOKEN}).start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()
