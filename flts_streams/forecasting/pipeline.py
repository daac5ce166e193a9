"""End-to-end training and evaluation runs (files in, MLflow runs and reports out)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting import benchmark, packaging
from flts_streams.forecasting.benchmark import BenchmarkResult
from flts_streams.forecasting.frame import PreparedFrame, prepare_frame
from flts_streams.forecasting.reference import lightgbm_reference
from flts_streams.forecasting.training import TrainConfig, split_point, train

log = logging.getLogger(__name__)
GLOBAL_IDENTIFIER = "global"  # the identifier tag of a global model's MLflow run


def read_table_file(path: Path) -> pd.DataFrame:
    """CSV or Parquet file as a DataFrame."""
    if not path.exists():
        raise InvalidInput(f"data file {path} does not exist")
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


def load_frame(path: Path, required: tuple[str, ...] = ()) -> PreparedFrame:
    """Read and prepare a training/evaluation file (blank cells and short gaps imputed)."""
    return prepare_frame(read_table_file(path), required=required, impute=True)


def train_and_register(
    data: Path | list[PreparedFrame],
    identifier: str,
    cfg: TrainConfig,
    *,
    registry_prefix: str,
    alias: str,
    promote: bool = False,
    progress: bool = True,
    decide: bool = True,
    rival: str | None = None,
    data_name: str = "",
) -> packaging.Registration:
    """Train on a file (or prepared series: e.g. claims on each side of an outage), log the model to MLflow,
    register it and maybe move the champion alias (``decide``).

    ``rival``: the global model's registered name; an identifier's first champion must beat it.
    """
    frames = [load_frame(data, cfg.features)] if isinstance(data, Path) else data
    name = packaging.registered_name(registry_prefix, identifier)
    return _train_and_register(
        frames, data_name or (data.name if isinstance(data, Path) else f"{len(frames)} series"), identifier, name,
        cfg, alias=alias, promote=promote, progress=progress, decide=decide, rival=rival,
    )  # fmt: skip


def train_global_and_register(
    data: list[Path] | list[PreparedFrame],
    name: str,
    cfg: TrainConfig,
    *,
    alias: str,
    promote: bool = False,
    progress: bool = True,
    data_name: str = "",
) -> packaging.Registration:
    """The global model: scale-free, trained across every file (one series each; directories: their files) or
    across prepared series (e.g. every identifier's claims)."""
    if data and isinstance(data[0], PreparedFrame):
        frames = [f for f in data if isinstance(f, PreparedFrame)]
    else:
        files = data_files([d for d in data if isinstance(d, Path)])
        if not files:
            raise InvalidInput(f"no CSV or Parquet files in {[str(d) for d in data]}")
        frames = [load_frame(f, cfg.features) for f in files]
        data_name = data_name or (files[0].name if len(files) == 1 else f"{len(files)} files")
    cfg = replace(cfg, scale_free=True)
    return _train_and_register(
        frames, data_name or f"{len(frames)} series", GLOBAL_IDENTIFIER, name, cfg, alias=alias, promote=promote,
        progress=progress,
    )  # fmt: skip


def data_files(paths: list[Path]) -> list[Path]:
    """The files named, directories replaced by their CSV and Parquet files (sorted, recursively)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".parquet", ".pq") and p.is_file())
        else:
            out.append(path)
    return out


def _train_and_register(
    frames: list[PreparedFrame],
    data_name: str,
    identifier: str,
    name: str,
    cfg: TrainConfig,
    *,
    alias: str,
    promote: bool,
    progress: bool,
    decide: bool = True,
    rival: str | None = None,
) -> packaging.Registration:
    bar = tqdm(total=cfg.epochs, desc=f"train {identifier} {cfg.kind}", unit="epoch", disable=not progress)

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}")

    try:
        result = train(frames if len(frames) > 1 else frames[0], cfg, on_epoch)
    finally:
        bar.close()
    run_id, uri = packaging.log_model(result, cfg, identifier, data_name)
    val_starts = [split_point(len(f), cfg) for f in frames]
    return packaging.register(
        run_id, uri, name, alias, frames, val_starts, result.forecaster, force=promote, decide=decide, rival=rival
    )


def evaluate(
    model_uri: str,
    data: Path,
    history: Path | None,
    *,
    stride: int = 20,
    history_rows: int = 5_040,
    reference: str | None = None,
    plot: Path | None = None,
) -> BenchmarkResult:
    """The forecast-quality benchmark on ``data`` (after ``history``; blank cells forward-filled): docs/MODEL.md."""
    loaded = packaging.load(model_uri)
    spec = loaded.forecaster.spec
    test = read_table_file(data)
    joined = pd.concat([read_table_file(history), test], ignore_index=True) if history else test
    frame = prepare_frame(joined.ffill(), required=spec.features, impute=True)
    start = len(frame) - len(prepare_frame(test.ffill(), required=spec.features, impute=True))
    ref = None
    if reference == "lightgbm":
        ref = lightgbm_reference(spec.targets[0], history_rows=history_rows, per_day=spec.rows_per_day)
    elif reference:
        raise InvalidInput(f"unknown reference {reference!r}; the one available is 'lightgbm'")
    result = benchmark.run(loaded.forecaster, frame, start, stride=stride, history_rows=history_rows, reference=ref)
    if plot:
        _plot(result, plot)
    return result


def _plot(result: BenchmarkResult, path: Path) -> None:
    """MAE by hour of day and by horizon step for every method, and a fan chart of the model's quantiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(12, 11))
    for name in result.forecasts:
        axes[0].plot(np.arange(24), result.mae_by_hour(name), marker=".", label=name)
        axes[1].plot(np.arange(1, result.truth.shape[1] + 1), result.mae_by_horizon(name), marker=".", label=name)
    axes[0].set(xlabel="hour of day of the forecast step", ylabel="MAE", title=f"{result.target}: error by hour")
    axes[1].set(xlabel="horizon (steps)", ylabel="MAE", title="error by horizon")
    axes[0].legend(fontsize=8)
    _fan(axes[2], result)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fan(ax: Any, result: BenchmarkResult, segments: int = 24) -> None:
    """Forecasts that do not overlap (each origin at least a horizon after the last), each drawn on its own:
    the actual values, the point forecast and the quantile bands; gaps between them stay gaps."""
    step = result.truth.shape[1]
    picks: list[int] = []
    for i, origin in enumerate(result.origins):
        if not picks or origin >= result.origins[picks[-1]] + step:
            picks.append(i)
        if len(picks) == segments:
            break
    levels = sorted(result.quantiles)
    bands = [(low, high) for low, high in zip(levels, reversed(levels)) if low < high]
    for n, i in enumerate(picks):
        stamps = result.stamps[i]
        ax.plot(stamps, result.truth[i], color="black", lw=0.8, label="actual" if n == 0 else None)
        ax.plot(stamps, result.forecasts["model"][i], color="tab:blue", lw=0.9, label="model" if n == 0 else None)
        for k, (low, high) in enumerate(bands):
            label = f"{low:g}-{high:g}" if n == 0 else None
            ax.fill_between(
                stamps,
                result.quantiles[low][i],
                result.quantiles[high][i],
                color="tab:blue",
                alpha=0.15 + 0.1 * k,
                label=label,
            )
    ax.set(title=f"{result.target}: fan chart (forecasts that do not overlap)", ylabel=result.target)
    ax.legend(fontsize=8)
