"""Training loop: chronological split, windows, early stopping (pure torch/numpy)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.evaluation import actuals, model_predictions, origins, score
from flts_streams.forecasting.features import time_features
from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.model import build_net
from flts_streams.forecasting.scaler import Scaler
from flts_streams.forecasting.spec import FEATURES, ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    kind: str = "lstm"
    features: tuple[str, ...] = FEATURES
    targets: tuple[str, ...] = ("down",)
    time_features: tuple[str, ...] = ("minute_of_day",)  # weekly terms overfit a few weeks of data
    window: int = 30
    horizon: int = 30
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    patience: int = 6
    val_fraction: float = 0.2
    seed: int = 42
    synthetic_data: bool = False  # trained on generated data (the demo model): answers say so


@dataclass
class TrainResult:
    """The best model, its validation split and the per-epoch history."""

    forecaster: Forecaster
    val_start: int
    history: list[dict[str, float]] = field(default_factory=list)
    val_metrics: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[int, dict[str, float]], None]


def split_point(rows: int, cfg: TrainConfig) -> int:
    """First validation row of a chronological split."""
    val_start = int(rows * (1 - cfg.val_fraction))
    if val_start < cfg.window + cfg.horizon or rows - val_start < cfg.window + cfg.horizon:
        raise InvalidInput(
            f"{rows} rows are too few to train with window {cfg.window} and horizon {cfg.horizon}; "
            f"need at least {int((cfg.window + cfg.horizon) / min(cfg.val_fraction, 1 - cfg.val_fraction)) + 1}"
        )
    return val_start


def make_spec(frame: PreparedFrame, cfg: TrainConfig, val_start: int) -> ModelSpec:
    """Spec with a scaler fitted on the training rows only."""
    missing = [c for c in (*cfg.features, *cfg.targets) if c not in frame.columns]
    if missing:
        raise InvalidInput(f"training data lacks columns {missing}")
    scaler = Scaler.fit(cfg.features, frame.select(cfg.features)[:val_start])
    return ModelSpec(
        kind=cfg.kind,
        features=cfg.features,
        targets=cfg.targets,
        window=cfg.window,
        horizon=cfg.horizon,
        cadence_s=float(frame.cadence.astype("timedelta64[ns]").astype(np.int64) / 1e9),
        scaler=scaler,
        time_features=cfg.time_features,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        synthetic_data=cfg.synthetic_data,
    )


def tensors(frame: PreparedFrame, spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row model inputs, calendar features and scaled targets."""
    scaled = spec.scaler.transform(frame.select(spec.features), spec.features).astype(np.float32)
    tf = time_features(frame.timestamps, spec.time_features)
    x = torch.from_numpy(np.concatenate([scaled, tf], axis=1))
    return x, torch.from_numpy(tf), torch.from_numpy(scaled[:, spec.target_index])


def gather(
    x: torch.Tensor, tf: torch.Tensor, y: torch.Tensor, at: torch.Tensor, w: int, h: int
) -> tuple[torch.Tensor, ...]:
    """Windows for origins ``at``: inputs (B,W,F+T), future calendar (B,H,T), targets (B,H,n)."""
    past = at[:, None] + torch.arange(-w, 0)[None, :]
    fut = at[:, None] + torch.arange(h)[None, :]
    return x[past], tf[fut], y[fut]


def train(frame: PreparedFrame, cfg: TrainConfig, on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train with early stopping on validation loss; returns the best epoch's model."""
    val_start = split_point(len(frame), cfg)
    spec = make_spec(frame, cfg, val_start)
    x, tf, y = tensors(frame, spec)
    train_at = torch.from_numpy(origins(val_start, 0, cfg.window, cfg.horizon))
    val_at = torch.from_numpy(origins(len(frame), val_start, cfg.window, cfg.horizon))
    torch.manual_seed(cfg.seed)
    net = build_net(spec, cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    loss_fn = nn.L1Loss()  # the evaluation metric is MAE
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, stale, history = float("inf"), copy.deepcopy(net.state_dict()), 0, []
    for epoch in range(1, cfg.epochs + 1):
        train_loss = _epoch(net, opt, loss_fn, x, tf, y, train_at[torch.randperm(len(train_at), generator=gen)], cfg)
        val_loss = _evaluate(net, loss_fn, x, tf, y, val_at, cfg)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        history.append(row)
        if on_epoch:
            on_epoch(epoch, row)
        if val_loss < best - 1e-5:
            best, best_state, stale = val_loss, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop epoch=%d best_val_loss=%.5f", epoch, best)
                break
    net.load_state_dict(best_state)
    forecaster = Forecaster(spec, net)
    result = TrainResult(forecaster, val_start, history)
    result.val_metrics = horizon_metrics(forecaster, frame, val_start)
    return result


def _epoch(net, opt, loss_fn, x, tf, y, order, cfg: TrainConfig) -> float:
    net.train()
    total = 0.0
    for lo in range(0, len(order), cfg.batch_size):
        xb, fb, yb = gather(x, tf, y, order[lo : lo + cfg.batch_size], cfg.window, cfg.horizon)
        opt.zero_grad()
        loss = loss_fn(net(xb, fb), yb)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        total += float(loss.detach()) * len(xb)
    return total / max(len(order), 1)


def _evaluate(net, loss_fn, x, tf, y, at, cfg: TrainConfig) -> float:
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, len(at), 2048):
            xb, fb, yb = gather(x, tf, y, at[lo : lo + 2048], cfg.window, cfg.horizon)
            total += float(loss_fn(net(xb, fb), yb)) * len(xb)
    return total / max(len(at), 1)


def horizon_metrics(forecaster: Forecaster, frame: PreparedFrame, start: int) -> dict[str, float]:
    """Validation MAE/RMSE per target and horizon, in original units."""
    spec = forecaster.spec
    at = origins(len(frame), start, spec.window, spec.horizon)
    pred = model_predictions(forecaster, frame, at)
    metrics: dict[str, float] = {}
    for j, target in enumerate(spec.targets):
        s = score("model", pred[:, :, j], actuals(frame.column(target), at, spec.horizon))
        metrics[f"val_mae_{target}"] = s.mean_mae
        metrics[f"val_rmse_{target}"] = s.mean_rmse
        for h in range(spec.horizon):
            metrics[f"val_mae_{target}_h{h + 1:02d}"] = float(s.mae[h])
            metrics[f"val_rmse_{target}_h{h + 1:02d}"] = float(s.rmse[h])
    return metrics
