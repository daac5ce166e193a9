"""The serving forward as one TorchScript graph: scaling, calendar features, network, inverse scaling.

Why one graph: the forward runs on the torch thread while the event loop holds the GIL most of
the time. Every call that gives the GIL back (each eager torch op, each numpy ufunc on more than
a few hundred elements) must win it back from the loop, and under load that waiting, not the
arithmetic, was most of a forward's time (27 windows: 2.7 ms alone, ~10 ms inside the busy
worker). A traced graph gives the GIL back once for everything.

The arithmetic is the numpy path's (features.time_features, Scaler): float64 scaling and phases,
float32 into the network, float64 out of it; sin/cos are torch's, which agree with numpy's after
the float32 rounding (a test compares the two paths).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flts_streams.forecasting.features import NS_DAY
from flts_streams.forecasting.history import history_size
from flts_streams.forecasting.model import Net
from flts_streams.forecasting.spec import ModelSpec

IN_GRAPH = ("minute_of_day", "day_of_week")  # calendar features computed inside; others use the numpy path
# torch.jit.trace is not thread-safe: two traces at once can fail inside the tracer ("IndexError:
# unordered_map::at"; seen in CI when a promotion and the champion-follow timer loaded models
# together, which crashed the models agent). Process-wide, like the tracer state it guards.
TRACE_LOCK = threading.Lock()
LOG_FLOOR = 1.0  # log-space models read max(value, 1): traffic in bits is far above it, a zero stays finite


class ServingGraph(nn.Module):
    """(B, W, F) float64 windows and (B,) int64 last timestamps -> (B, H, targets) float64, all in original units."""

    # Buffers registered in __init__ (annotated for the type checker; nn.Module types attributes as Tensor | Module).
    mean: torch.Tensor
    scale: torch.Tensor
    target_mean: torch.Tensor
    target_scale: torch.Tensor
    offsets: torch.Tensor
    output_offsets: torch.Tensor

    def __init__(self, net: Net, spec: ModelSpec, offsets_ns: np.ndarray) -> None:
        super().__init__()
        self.net = net
        self.window = spec.window
        self.time_features = tuple(spec.time_features)
        self.log_columns = spec.log_index
        self.log_targets = spec.log_targets
        self.sort_quantiles = bool(spec.quantiles)
        self.register_buffer("output_offsets", torch.from_numpy(spec.output_offsets), persistent=False)
        for name, values in (
            ("mean", spec.scaler.params(spec.features)[0]),
            ("scale", spec.scaler.params(spec.features)[1]),
            ("target_mean", spec.scaler.params(spec.targets)[0]),
            ("target_scale", spec.scaler.params(spec.targets)[1]),
        ):
            self.register_buffer(name, torch.from_numpy(np.asarray(values, dtype=np.float64).copy()), persistent=False)
        self.register_buffer(
            "offsets", torch.from_numpy(np.asarray(offsets_ns, dtype=np.int64).copy()), persistent=False
        )

    def forward(self, raw: torch.Tensor, last_ns: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """One batched forecast; the layout of every intermediate matches Forecaster's numpy path."""
        grid = last_ns.unsqueeze(1) + self.offsets  # (B, W+H) ns timestamps
        columns = []
        for name in self.time_features:
            angle = (2 * math.pi) * self._phase(grid, name)
            columns += [torch.sin(angle).float(), torch.cos(angle).float()]
        calendar = torch.stack(columns, dim=2)  # (B, W+H, 2 * features): sin, cos per feature
        if self.log_columns:  # Python constants: the trace keeps the branch taken for this model
            logs = torch.log(torch.clamp(raw[:, :, self.log_columns], min=LOG_FLOOR))
            raw = raw.index_copy(2, torch.tensor(self.log_columns), logs)
        scaled = ((raw - self.mean) / self.scale).float()
        x = torch.cat([scaled, calendar[:, : self.window]], dim=2)
        out = self.net(x, calendar[:, self.window :].contiguous(), history).double() + self.output_offsets
        out = out * self.target_scale.view(1, 1, -1, 1) + self.target_mean.view(1, 1, -1, 1)
        if self.sort_quantiles:  # quantiles never cross
            out = torch.cat([out[..., :1], torch.sort(out[..., 1:], dim=-1).values], dim=-1)
        return torch.exp(out) if self.log_targets else out

    @staticmethod
    def _phase(ns: torch.Tensor, name: str) -> torch.Tensor:
        """features._phase in torch (floor division and modulo, like numpy's on int64)."""
        if name == "minute_of_day":
            return torch.remainder(ns, NS_DAY).double() / NS_DAY
        # day_of_week: 1970-01-01 was a Thursday, +3 makes Monday 0
        return torch.remainder(torch.div(ns, NS_DAY, rounding_mode="floor") + 3, 7).double() / 7.0


class BoundGraph:
    """A traced graph called with one model's tensors (a shared graph) or none (a private one), GIL-free inside.

    Why shared: a graph traced per model cost ~0.5 MB at load and ~0.8 MB more once TorchScript's
    profiling executor had specialised it for the batch sizes seen: 1,000 identifiers' champions
    in memory took a worker from 0.48 to 2.27 GB (`flts bench scale`). Traced once per
    architecture with every parameter and buffer as an input, a model holds its tensors only.
    Every tensor a call passes is held by C++ for the call (``held_by_cpp``).
    """

    __slots__ = ("_graph", "_held", "_tensors")

    def __init__(self, graph: torch.jit.ScriptModule, tensors: tuple[torch.Tensor, ...] = ()) -> None:
        self._graph = graph
        self._tensors = tensors
        self._held = held_by_cpp(tensors) if tensors else None

    def __call__(self, raw: torch.Tensor, last_ns: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        held = held_by_cpp((raw, last_ns, history))
        try:
            return self._graph(raw, last_ns, history, *self._tensors)
        finally:
            del held  # only now: the graph has returned


def held_by_cpp(tensors: Sequence[torch.Tensor]) -> object:
    """A C++ list referencing ``tensors``: while it lives, a graph that uses them never takes the GIL to let go of one.

    Why: since torch's rework of PyObject preservation (pytorch/pytorch#167564; torch 2.13 here), a tensor with
    a Python wrapper increfs the wrapper when its C++ reference count goes from 1 to 2 and decrefs it, taking
    the GIL, when the count falls back to 1 (c10/util/intrusive_ptr.h). A tensor made in Python has one C++
    reference, its wrapper's; a traced graph called with it takes a second and drops it after the tensor's
    last use, mid-forward. So the torch thread stopped there to wait for the GIL the event loop holds, once
    per such tensor: the three inputs, and a shared graph's ~20 weights. One more C++ reference, held here,
    keeps every count above 1 until the call returns. Measured, a 34-window forward beside a busy Python
    thread: 4.1 ms (1.2 alone) -> 1.2 ms; docs/BENCHMARKS.md has the worker's figures. Pinned by
    tests/test_flts_streams/test_forecasting/test_graph.py.
    """
    # What torch.jit.script(list) returns (torch/jit/_script.py, create_script_list), without its deprecation warning.
    return torch._C.ScriptList(list(tensors))  # noqa: SLF001


class _Functional(nn.Module):
    """A copy of a ServingGraph whose parameters and buffers are its inputs (what a shared trace records).

    torch.func.functional_call refuses to run under a trace, so the copy's parameters become plain
    attributes that each call points at its inputs (nn.LSTM's setattr also updates its flat weights).
    """

    def __init__(self, graph: ServingGraph) -> None:
        super().__init__()
        self.names = tensor_names(graph)
        self.graph = copy.deepcopy(graph)
        for name in self.names:
            owner, leaf = self._owner(name)
            value = getattr(owner, leaf).detach()
            owner._parameters.pop(leaf, None)  # noqa: SLF001 - a parameter cannot be assigned a plain tensor
            owner._buffers.pop(leaf, None)  # noqa: SLF001 - nor kept as a buffer the trace would read
            setattr(owner, leaf, value)

    def _owner(self, name: str) -> tuple[nn.Module, str]:
        path, _, leaf = name.rpartition(".")
        return (self.graph.get_submodule(path) if path else self.graph), leaf

    def forward(
        self, raw: torch.Tensor, last_ns: torch.Tensor, history: torch.Tensor, *tensors: torch.Tensor
    ) -> torch.Tensor:
        """ServingGraph.forward with ``tensors`` (in tensor_names order) in place of its own."""
        for name, value in zip(self.names, tensors):
            setattr(*self._owner(name), value)
        out: torch.Tensor = self.graph(raw, last_ns, history)
        return out


def tensor_names(graph: nn.Module) -> list[str]:
    """Names of every parameter and buffer of ``graph``, in a fixed order."""
    return [n for n, _ in graph.named_parameters()] + [n for n, _ in graph.named_buffers()]


# The spec fields a trace bakes in as structure or constants; everything else reaches it as tensors.
ARCHITECTURE_FIELDS = (
    "kind",
    "features",
    "targets",
    "window",
    "horizon",
    "time_features",
    "hidden_size",
    "num_layers",
    "quantiles",
    "history_days",
    "log_targets",
    "members",
    "relative",
)


def architecture(spec: ModelSpec) -> str:
    """The key of the graph ``spec``'s models share."""
    return json.dumps({f: getattr(spec, f) for f in ARCHITECTURE_FIELDS}, sort_keys=True)


@dataclass(frozen=True, eq=False)
class _Template:
    """A first model of an architecture, to trace it from; equal to any other of the same architecture."""

    key: str
    graph: ServingGraph
    example: tuple[torch.Tensor, ...]

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Template) and other.key == self.key


@functools.lru_cache(maxsize=64)  # a memo keyed by the architecture: one trace per architecture per process
def _shared_graph(template: _Template) -> torch.jit.ScriptModule:
    tensors = dict(template.graph.named_parameters()) | dict(template.graph.named_buffers())
    inputs = (*template.example, *(tensors[n] for n in tensor_names(template.graph)))
    return _trace(_Functional(template.graph).eval(), inputs)


def private_graph(net: Net, spec: ModelSpec, offsets_ns: np.ndarray) -> BoundGraph | None:
    """The model's forward traced for it alone: ~5% more /predict throughput than the shared graph (the
    call passes no tensors), for ~1.7 MB; used for the few models that answer most (default, global)."""
    if not set(spec.time_features) <= set(IN_GRAPH):
        return None
    example = (
        torch.zeros(2, spec.window, len(spec.features), dtype=torch.float64),
        torch.zeros(2, dtype=torch.int64),
        torch.zeros(2, _history_width(spec)),
    )
    return BoundGraph(_trace(ServingGraph(net, spec, offsets_ns).eval(), example))


def serving_graph(net: Net, spec: ModelSpec, offsets_ns: np.ndarray) -> BoundGraph | None:
    """The model's forward on its architecture's shared graph, or None when a calendar feature is only in numpy."""
    if not set(spec.time_features) <= set(IN_GRAPH):
        return None
    own = ServingGraph(net, spec, offsets_ns).eval()
    example = (
        torch.zeros(2, spec.window, len(spec.features), dtype=torch.float64),
        torch.zeros(2, dtype=torch.int64),
        torch.zeros(2, _history_width(spec)),
    )
    shared = _shared_graph(_Template(architecture(spec), own, example))
    tensors = dict(own.named_parameters()) | dict(own.named_buffers())
    return BoundGraph(shared, tuple(tensors[n].detach() for n in tensor_names(own)))


def traced_net(net: Net, spec: ModelSpec) -> torch.jit.ScriptModule:
    """The network alone as TorchScript (the numpy path's forward): one GIL release instead of one per op."""
    n_time = 2 * len(spec.time_features)
    example = (
        torch.zeros(2, spec.window, len(spec.features) + n_time),
        torch.zeros(2, spec.horizon, n_time),
        torch.zeros(2, _history_width(spec)),
    )
    return _trace(net, example)


def _history_width(spec: ModelSpec) -> int:
    return history_size(spec.horizon) if spec.history_days else 0


def _trace(module: nn.Module, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    """torch.jit.trace without its warnings about the RNN's shape checks.

    Why quiet: nn.LSTM/GRU compare input and hidden sizes in Python; the trace keeps no check,
    which is fine because the feature count is fixed per model and the tests run batch sizes 1-70
    through the traced graph. The warnings otherwise land in every worker log on each model load.
    torch 2.13 deprecates torch.jit.trace (a DeprecationWarning, hidden by default); its suggested
    successors do not fit here: torch.export runs as Python ops (a GIL round trip per op again) and
    torch.compile needs a C compiler at load. Revisit when TorchScript is removed.
    """
    with TRACE_LOCK, torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return torch.jit.trace(module, example, check_trace=False)
