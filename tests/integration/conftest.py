"""Session fixtures: an embedded Tansu broker, a trained demo model, a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flts_streams.core.settings import Settings
from flts_streams.kafka.embedded_broker import EmbeddedBroker
from tests.integration.harness import ADMIN_TOKEN, Worker, start_broker


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
    torch.set_num_threads(
        settings.training.threads()
    )  # as `flts train`: torch's default ran 3.5-5x slower on a busy machine
    packaging.configure(settings.mlflow_tracking_uri)
    packaging.ensure_experiment("flts-training", settings.mlflow_artifact_root)
    data = var / "demo.csv"
    demo_frame(days=4, seed=5).to_csv(data, index=False)
    train_and_register(
        data,
        "demo",
        TrainConfig(epochs=2, hidden_size=16, synthetic_data=True, members=1),
        registry_prefix="flts-",
        alias="champion",
        progress=False,
    )
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
