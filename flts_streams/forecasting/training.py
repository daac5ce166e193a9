"""Training loop: chronological split, windows, early stopping (pure torch/numpy)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.evaluation import actuals, model_outputs, model_predictions, origins, score
from flts_streams.forecasting.features import time_features
from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.graph import LOG_FLOOR
from flts_streams.forecasting.history import history_features
from flts_streams.forecasting.model import ForecastEnsemble, build_net
from flts_streams.forecasting.scaler import Scaler
from flts_streams.forecasting.spec import FEATURES, VOLUME_FEATURES, ModelSpec

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
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # forecast besides the point forecast (pinball loss)
    history_days: int = 7  # days of the first target's history the model reads (0: the window only)
    profile_halfwidth: int = 7  # rows each side of a time-of-day slot in the history profile
    log_targets: bool = True  # model the targets as logs (off by itself when a target is ever <= 0)
    members: int = 5  # networks from seeds seed, seed+1, ... averaged (docs/MODEL.md: seed noise was ~+-5%)
    # Serve one network trained to reproduce the members' mean (distillation) instead of all of them:
    # five LSTMs per forward cut /predict throughput from 0.51 to 0.35 of the bare handler.
    distill: bool = True
    # Kind and hidden size of that served network ("" / 0: the members'). An MLP over the whole window,
    # distilled from the LSTM members, scores as an LSTM student on the benchmark (docs/MODEL.md) with one
    # matrix product instead of 30 recurrent steps, and the forward's CPU is what a /predict waits for
    # under load (docs/BENCHMARKS.md). Trained on the labels alone, the same MLP was worse.
    distill_kind: str = "mlp"
    distill_hidden: int = 128
    # Distil a single member too (the trainer's retrainings, one member by default): on both sites the MLP
    # distilled from one LSTM scored 0.6-6.1% below that LSTM, and the served forward stays the MLP's (docs/MODEL.md).
    distill_one: bool = False
    # Scale-free inputs (spec.relative): one model for sites of any traffic level (a global model).
    scale_free: bool = False


@dataclass
class TrainResult:
    """The best model, its validation split and the per-epoch history."""

    forecaster: Forecaster
    val_start: int
    history: list[dict[str, float]] = field(default_factory=list)
    val_metrics: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[int, dict[str, float]], None]


def min_rows(cfg: TrainConfig) -> int:
    """Fewest rows a series needs to train on: both sides of its split hold a window and a horizon."""
    need = cfg.window + cfg.horizon
    bound = int(need / min(cfg.val_fraction, 1 - cfg.val_fraction)) + 2  # enough whatever int() rounds
    return next((rows for rows in range(2 * need, bound) if _splits(rows, cfg)), bound)


def _splits(rows: int, cfg: TrainConfig) -> bool:
    val_start = int(rows * (1 - cfg.val_fraction))
    return val_start >= cfg.window + cfg.horizon and rows - val_start >= cfg.window + cfg.horizon


def split_point(rows: int, cfg: TrainConfig) -> int:
    """First validation row of a chronological split."""
    if not _splits(rows, cfg):
        raise InvalidInput(
            f"{rows} rows are too few to train with window {cfg.window} and horizon {cfg.horizon}; "
            f"need at least {min_rows(cfg)}"
        )
    return int(rows * (1 - cfg.val_fraction))


def make_spec(
    frames: PreparedFrame | Sequence[PreparedFrame], cfg: TrainConfig, val_starts: int | Sequence[int]
) -> ModelSpec:
    """Spec with a scaler fitted on the training rows only (on log targets when the model is log-space).

    Several frames (a global model): the scaler is fitted on all their training rows, each scale-free
    column centred on its frame's mean, so its scale is the variation within a site, not between sites.
    """
    frames, val_starts = _as_lists(frames, val_starts)
    missing = sorted({c for f in frames for c in (*cfg.features, *cfg.targets) if c not in f.columns})
    if missing:
        raise InvalidInput(f"training data lacks columns {missing}")
    check_quantiles(cfg.quantiles)
    positive = all(bool((f.select(cfg.targets) > 0).all()) for f in frames)
    log_targets = cfg.scale_free or (cfg.log_targets and positive)
    if cfg.log_targets and not log_targets:
        log.info("log_targets off: a target is zero or negative in the training data")
    relative = tuple(c for c in cfg.features if c in VOLUME_FEATURES or c in cfg.targets) if cfg.scale_free else ()
    logged = _logged(cfg.features, cfg.targets, log_targets, relative)
    rows = []
    for frame, val_start in zip(frames, val_starts):
        part = _model_space(frame.select(cfg.features), logged)[:val_start]
        if relative:
            idx = [cfg.features.index(c) for c in relative]
            part[:, idx] -= part[:, idx].mean(axis=0)
        rows.append(part)
    scaler = Scaler.fit(cfg.features, np.concatenate(rows))
    return ModelSpec(
        kind=cfg.kind,
        features=cfg.features,
        targets=cfg.targets,
        window=cfg.window,
        horizon=cfg.horizon,
        cadence_s=_cadence_s(frames),
        scaler=scaler,
        time_features=cfg.time_features,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        synthetic_data=cfg.synthetic_data,
        quantiles=tuple(sorted(cfg.quantiles)),
        history_days=cfg.history_days,
        profile_halfwidth=cfg.profile_halfwidth,
        log_targets=log_targets,
        members=cfg.members,
        relative=relative,
    )


def _as_lists(
    frames: PreparedFrame | Sequence[PreparedFrame], val_starts: int | Sequence[int]
) -> tuple[list[PreparedFrame], list[int]]:
    """One frame or several, with their validation starts, as lists."""
    if isinstance(frames, PreparedFrame):
        return [frames], [int(val_starts)]  # type: ignore[arg-type]
    return list(frames), [int(v) for v in val_starts]  # type: ignore[union-attr]


def _cadence_s(frames: list[PreparedFrame]) -> float:
    """The frames' common cadence in seconds; InvalidInput when they differ."""
    found = {float(f.cadence.astype("timedelta64[ns]").astype(np.int64) / 1e9) for f in frames}
    if len(found) != 1:
        raise InvalidInput(f"training files have different cadences {sorted(found)} s; one model needs one cadence")
    return found.pop()


def check_quantiles(quantiles: tuple[float, ...]) -> None:
    """Quantile levels strictly between 0 and 1, no repeats."""
    if any(not 0 < q < 1 for q in quantiles) or len(set(quantiles)) != len(quantiles):
        raise InvalidInput(f"quantiles must be distinct levels strictly between 0 and 1; got {list(quantiles)}")


def _logged(
    features: tuple[str, ...], targets: tuple[str, ...], log_targets: bool, relative: tuple[str, ...]
) -> list[int]:
    """Positions of the columns the model reads as logs (ModelSpec.log_index before there is a spec)."""
    return sorted({features.index(t) for t in targets if log_targets} | {features.index(c) for c in relative})


def _model_space(values: np.ndarray, logged: list[int]) -> np.ndarray:
    """Feature columns with the ``logged`` ones as logs (forecast.LOG_FLOOR applies)."""
    if not logged:
        return values
    out = values.astype(np.float64, copy=True)
    out[:, logged] = np.log(np.maximum(out[:, logged], LOG_FLOOR))
    return out


@dataclass(frozen=True)
class Tensors:
    """Per-row model inputs, calendar features, scaled targets and, per origin row, history features."""

    x: torch.Tensor  # (rows, F+T)
    tf: torch.Tensor  # (rows, T)
    y: torch.Tensor  # (rows, targets)
    history: torch.Tensor  # (rows, K): the features of an origin at that row (K = 0: no history)


def tensors(frame: PreparedFrame, spec: ModelSpec) -> Tensors:
    """The model's view of a frame: what each training origin reads, computed once for all rows."""
    model_space = _model_space(frame.select(spec.features), spec.log_index)
    scaled = spec.scaler.transform(model_space, spec.features).astype(np.float32)
    tf = time_features(frame.timestamps, spec.time_features)
    x = torch.from_numpy(np.concatenate([scaled, tf], axis=1))
    if spec.history_days:
        first = scaled[:, spec.target_index[0]].astype(np.float64)
        hist = history_features(
            first,
            np.arange(len(frame)),
            window=spec.window,
            horizon=spec.horizon,
            per_day=spec.rows_per_day,
            days=spec.history_days,
            halfwidth=spec.profile_halfwidth,
        )
    else:
        hist = np.zeros((len(frame), 0), dtype=np.float32)
    return Tensors(x, torch.from_numpy(tf), torch.from_numpy(scaled[:, spec.target_index]), torch.from_numpy(hist))


def joined(parts: Sequence[Tensors]) -> Tensors:
    """The tensors of several frames one after the other (origins are offset by the rows before them)."""
    if len(parts) == 1:
        return parts[0]
    return Tensors(*(torch.cat([getattr(p, name) for p in parts]) for name in ("x", "tf", "y", "history")))


def joined_origins(rows: Sequence[int], val_starts: Sequence[int], w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) origins of frames of ``rows`` rows laid one after the other: each origin's window
    and horizon lie inside its own frame and its own split."""
    starts = np.cumsum([0, *rows])
    train_at = [origins(v, 0, w, h) + o for v, o in zip(val_starts, starts)]
    val_at = [origins(n, v, w, h) + o for n, v, o in zip(rows, val_starts, starts)]
    return np.concatenate(train_at), np.concatenate(val_at)


def gather(t: Tensors, at: torch.Tensor, w: int, h: int) -> tuple[torch.Tensor, ...]:
    """Origins ``at``: inputs (B,W,F+T), future calendar (B,H,T), history (B,K), targets (B,H,n)."""
    past = at[:, None] + torch.arange(-w, 0)[None, :]
    fut = at[:, None] + torch.arange(h)[None, :]
    return t.x[past], t.tf[fut], t.history[at], t.y[fut]


def quantile_loss(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean of 2x the pinball loss of each output (level 0.5 first: the point forecast's L1) against (B,H,n)."""
    err = target.unsqueeze(-1) - pred
    return (2 * torch.maximum(levels * err, (levels - 1) * err)).mean()


def train(
    frames: PreparedFrame | Sequence[PreparedFrame], cfg: TrainConfig, on_epoch: EpochCallback | None = None
) -> TrainResult:
    """Train each member with early stopping on validation loss; returns the best epochs' model.

    Several frames (e.g. sites, for a global model): each is split chronologically on its own and
    no window crosses from one into the next.
    """
    frames = [frames] if isinstance(frames, PreparedFrame) else list(frames)
    val_starts = [split_point(len(f), cfg) for f in frames]
    spec = make_spec(frames, cfg, val_starts)
    data = joined([tensors(f, spec) for f in frames])
    lengths = [len(f) for f in frames]
    train_at, val_at = (torch.from_numpy(a) for a in joined_origins(lengths, val_starts, cfg.window, cfg.horizon))
    levels = torch.tensor([0.5, *spec.quantiles])
    member_spec = replace(spec, members=1)
    states, history = [], []
    for m in range(spec.members):
        state, rows = _train_member(member_spec, data, train_at, val_at, levels, cfg, cfg.seed + m, on_epoch)
        states.append(state)
        history += [{"member": m, **row} for row in rows]
    net = build_net(spec)
    if isinstance(net, ForecastEnsemble):
        for member, state in zip(net.members, states):
            member.load_state_dict(state)
    else:
        net.load_state_dict(states[0])
    if cfg.distill and (spec.members > 1 or cfg.distill_one):
        teacher = _outputs(net, data, torch.cat([train_at, val_at]), cfg, sum(lengths))
        spec = replace(
            member_spec,
            distilled_from=spec.members,
            kind=cfg.distill_kind or spec.kind,
            hidden_size=cfg.distill_hidden or spec.hidden_size,
        )
        state, rows = _train_member(
            spec, data, train_at, val_at, levels, cfg, cfg.seed + spec.distilled_from, on_epoch, teacher
        )
        history += [{"member": -1, **row} for row in rows]  # -1: the distilled network
        net = build_net(spec)
        net.load_state_dict(state)
    forecaster = calibrate(Forecaster(spec, net), frames, val_starts)
    result = TrainResult(forecaster, val_starts[0], history)
    result.val_metrics = horizon_metrics(forecaster, frames, val_starts)
    return result


def _train_member(
    spec: ModelSpec,
    data: Tensors,
    train_at: torch.Tensor,
    val_at: torch.Tensor,
    levels: torch.Tensor,
    cfg: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None,
    teacher: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """One network trained from ``seed``: its best epoch's state and the per-epoch history.

    With ``teacher`` (per origin row, the outputs to reproduce) it learns those instead of the pinball
    loss against the actuals; early stopping still watches the point forecast's error on the actuals.
    """
    torch.manual_seed(seed)
    net = build_net(spec, seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, stale, history = float("inf"), copy.deepcopy(net.state_dict()), 0, []
    for epoch in range(1, cfg.epochs + 1):
        order = train_at[torch.randperm(len(train_at), generator=gen)]
        train_loss = _epoch(net, opt, levels, data, order, cfg, teacher)
        val_loss = _evaluate(net, data, val_at, cfg)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        history.append(row)
        if on_epoch:
            on_epoch(epoch, row)
        if val_loss < best - 1e-5:
            best, best_state, stale = val_loss, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop seed=%d epoch=%d best_val_loss=%.5f", seed, epoch, best)
                break
    return best_state, history


def _epoch(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    levels: torch.Tensor,
    data: Tensors,
    order: torch.Tensor,
    cfg: TrainConfig,
    teacher: torch.Tensor | None = None,
) -> float:
    net.train()
    total = 0.0
    for lo in range(0, len(order), cfg.batch_size):
        batch = order[lo : lo + cfg.batch_size]
        xb, fb, hb, yb = gather(data, batch, cfg.window, cfg.horizon)
        opt.zero_grad()
        pred = net(xb, fb, hb)
        loss = quantile_loss(pred, yb, levels) if teacher is None else (pred - teacher[batch]).abs().mean()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        total += float(loss.detach()) * len(xb)
    return total / max(len(order), 1)


def _outputs(net: nn.Module, data: Tensors, at: torch.Tensor, cfg: TrainConfig, rows: int) -> torch.Tensor:
    """(rows, H, targets, outputs) scaled outputs of ``net`` for origins ``at`` (zeros elsewhere): the teacher."""
    net.eval()
    out: torch.Tensor | None = None
    with torch.inference_mode():
        for lo in range(0, len(at), 2048):
            part = at[lo : lo + 2048]
            xb, fb, hb, _ = gather(data, part, cfg.window, cfg.horizon)
            values = net(xb, fb, hb)
            if out is None:
                out = torch.zeros((rows, *values.shape[1:]))
            out[part] = values
    assert out is not None, "no origin"
    return out.clone()  # a normal tensor: inference-mode tensors cannot take part in training's autograd


def _evaluate(net: nn.Module, data: Tensors, at: torch.Tensor, cfg: TrainConfig) -> float:
    """Validation MAE of the point forecast in scaled units (the metric early stopping watches)."""
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, len(at), 2048):
            xb, fb, hb, yb = gather(data, at[lo : lo + 2048], cfg.window, cfg.horizon)
            total += float((net(xb, fb, hb)[..., 0] - yb).abs().mean()) * len(xb)
    return total / max(len(at), 1)


def calibrate(
    forecaster: Forecaster, frames: PreparedFrame | Sequence[PreparedFrame], val_starts: int | Sequence[int]
) -> Forecaster:
    """The forecaster with each quantile shifted so that, on the validation split, that share of actuals
    of the first target falls below it (split-conformal, per level, in the network's scaled units).

    Pinball loss alone left intervals too narrow where the validation days differ from the training
    days (ElBorn: 0.1-0.9 covered 66-69% of the benchmark's actuals). The split also chose the epochs,
    so the calibration is a little optimistic. Several frames: their validation origins pooled.
    """
    spec = forecaster.spec
    if not spec.quantiles:
        return forecaster
    gaps = []
    for frame, val_start in zip(*_as_lists(frames, val_starts)):
        at = origins(len(frame), val_start, spec.window, spec.horizon)
        out = model_outputs(forecaster, frame, at)[:, :, 0, :]
        truth = actuals(frame.column(spec.targets[0]), at, spec.horizon)
        to_scaled = forecaster.target_space
        gaps.append(np.stack([to_scaled(truth) - to_scaled(out[..., 1 + i]) for i in range(len(spec.quantiles))]))
    pooled = np.concatenate(gaps, axis=1)
    shift = [float(np.quantile(pooled[i], q)) for i, q in enumerate(spec.quantiles)]
    offsets = tuple(a + b for a, b in zip(spec.output_offsets[1:], shift))
    return Forecaster(replace(spec, quantile_offsets=offsets), forecaster.net)


def horizon_metrics(
    forecaster: Forecaster, frames: PreparedFrame | Sequence[PreparedFrame], starts: int | Sequence[int]
) -> dict[str, float]:
    """Validation MAE/RMSE per target and horizon, in original units (several frames: their origins pooled)."""
    spec = forecaster.spec
    preds, truths = [], []
    for frame, start in zip(*_as_lists(frames, starts)):
        at = origins(len(frame), start, spec.window, spec.horizon)
        preds.append(model_predictions(forecaster, frame, at))
        truths.append(np.stack([actuals(frame.column(t), at, spec.horizon) for t in spec.targets], axis=2))
    pred, truth = np.concatenate(preds), np.concatenate(truths)
    metrics: dict[str, float] = {}
    for j, target in enumerate(spec.targets):
        s = score("model", pred[:, :, j], truth[:, :, j])
        metrics[f"val_mae_{target}"] = s.mean_mae
        metrics[f"val_rmse_{target}"] = s.mean_rmse
        for h in range(spec.horizon):
            metrics[f"val_mae_{target}_h{h + 1:02d}"] = float(s.mae[h])
            metrics[f"val_rmse_{target}_h{h + 1:02d}"] = float(s.rmse[h])
    return metrics
