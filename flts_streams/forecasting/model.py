"""PyTorch direct multi-horizon forecasters (LSTM, GRU or an MLP over the window), alone or as an ensemble of seeds."""

from __future__ import annotations

import torch
from torch import nn

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.history import history_size
from flts_streams.forecasting.spec import ModelSpec

KINDS = ("lstm", "gru", "mlp")


class ForecastNet(nn.Module):
    """Window of W rows (features + time features) and history features -> H future steps of the targets.

    The window is encoded by a recurrent layer (lstm, gru) or, for kind mlp, by one linear layer over all its
    rows at once (what training distils the LSTM ensemble into: a cheaper forward, TrainConfig.distill_kind).
    The head also sees the calendar features of the H future steps (they are known in advance) and,
    when the model reads history, the history features (forecasting/history.py); it predicts the
    departure from the window's mean target level of the point forecast and of each quantile.
    """

    target_index: torch.Tensor  # buffers (annotated for the type checker)
    relative_mask: torch.Tensor
    history_mask: torch.Tensor

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.kind not in KINDS:
            raise InvalidInput(f"unknown model kind {spec.kind!r}; choose one of {list(KINDS)}")
        n_time = 2 * len(spec.time_features)
        n_history = history_size(spec.horizon) if spec.history_days else 0
        n_in = len(spec.features) + n_time
        self.recurrent = spec.kind != "mlp"  # a Python constant: a trace keeps the branch taken
        if self.recurrent:
            rnn_cls = nn.LSTM if spec.kind == "lstm" else nn.GRU
            self.rnn = rnn_cls(
                input_size=n_in,
                hidden_size=spec.hidden_size,
                num_layers=spec.num_layers,
                dropout=spec.dropout if spec.num_layers > 1 else 0.0,
                batch_first=True,
            )
        else:  # the whole window at once: one matrix product instead of W recurrent steps
            self.encoder = nn.Sequential(nn.Linear(spec.window * n_in, spec.hidden_size), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(spec.hidden_size + spec.horizon * n_time + n_history, spec.hidden_size),
            nn.ReLU(),
            nn.Linear(spec.hidden_size, spec.horizon * len(spec.targets) * spec.outputs),
        )
        self.horizon = spec.horizon
        self.n_targets = len(spec.targets)
        self.outputs = spec.outputs
        self.register_buffer("target_index", torch.tensor(spec.target_index, dtype=torch.long), persistent=False)
        # 1 where a column (a history feature) is centred on the window, 0 elsewhere: a multiply, not a gather and
        # scatter (index_select/index_copy cost the scale-free graph ~7% more time a batch than the absolute one).
        relative = torch.zeros(len(spec.features) + n_time)
        relative[spec.relative_index] = 1.0
        self.register_buffer("relative_mask", relative, persistent=False)
        self.register_buffer("history_mask", (torch.arange(n_history) < n_history - 1).float(), persistent=False)
        self.relative = bool(spec.relative)  # Python constants: a trace keeps the branch taken

    def forward(self, window: torch.Tensor, future_time: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B, W, F+T), (B, H, T), (B, K) -> (B, H, targets, outputs) in scaled units (K = 0: no history)."""
        # Anchor on the window mean, not the last value: the targets are noisy and
        # a single last reading is a poor level estimate.
        means = window.mean(dim=1)
        level = means.index_select(1, self.target_index)
        if self.relative:
            # Scale-free: the network sees log columns relative to their window mean and history relative to
            # the level, so a site carrying c times the traffic gets c times the forecast (log space: a shift).
            # The last history feature is a share of days, not a level: its mask is 0.
            window = window - means.unsqueeze(1) * self.relative_mask
            history = history - level[:, :1] * self.history_mask
        if self.recurrent:
            out, _ = self.rnn(window)
            encoded = out[:, -1]
        else:
            encoded = self.encoder(window.flatten(1))
        z = torch.cat([encoded, future_time.flatten(1), history], dim=1)
        delta = self.head(z).view(-1, self.horizon, self.n_targets, self.outputs)
        return level.view(-1, 1, self.n_targets, 1) + delta


class ForecastEnsemble(nn.Module):
    """Networks of one spec trained from different seeds; the forecast is their mean (less seed-to-seed noise)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.members = nn.ModuleList(ForecastNet(spec) for _ in range(spec.members))

    def forward(self, window: torch.Tensor, future_time: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """The members' mean forecast, same shapes as ForecastNet."""
        outs = [m(window, future_time, history) for m in self.members]
        return torch.stack(outs).mean(dim=0)


Net = ForecastNet | ForecastEnsemble


def build_net(spec: ModelSpec, seed: int | None = None) -> Net:
    """A fresh network for spec (an ensemble when spec.members > 1), deterministic when seeded."""
    if seed is not None:
        torch.manual_seed(seed)
    return ForecastEnsemble(spec) if spec.members > 1 else ForecastNet(spec)
