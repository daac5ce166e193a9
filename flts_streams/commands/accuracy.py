"""`flts accuracy`: a worker's live accuracy of one identifier, as a table and optionally a figure."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from flts_streams.core.errors import FltsError


def fetch_report(url: str, identifier: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """GET /accuracy/{identifier}?detail=true from the worker at ``url`` (any worker: it routes to the owner)."""
    address = f"{url.rstrip('/')}/accuracy/{urllib.parse.quote(identifier, safe='')}?detail=true"
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as response:  # noqa: S310 - an http(s) URL we built
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("detail", exc.reason)
        raise FltsError(f"{address}: {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise FltsError(f"{address}: no worker answers ({exc.reason}); is `flts dev` running?") from None


def table_lines(report: dict[str, Any]) -> list[str]:
    """A Markdown table per window: model run, horizon, steps, MAE, persistence MAE, skill, coverage."""
    target = report["targets"][0]
    lines = [f"identifier={report['identifier']} scored through {report['scored_through']}"]
    for window, rows in report["windows"].items():
        lines += [
            f"last {window} of actuals ({target}):",
            "| run | horizon | steps | MAE | persistence MAE | skill | coverage |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['run_id'][:8]} | {r['horizon']} | {r['steps']} | {r['mae'][target]:.4g} | "
            f"{r['persistence_mae'][target]:.4g} | {_num(r['skill'])} | {_num(r['coverage'])} |"
            for r in rows
        ] or ["| (nothing scored yet) | | | | | | |"]
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def plot(report: dict[str, Any], path: Path) -> None:
    """Forecasts (with their intervals) against the actuals, and the error over time, as one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), constrained_layout=True)
    for n, s in enumerate(report["series"]):
        start = np.datetime64(s["issued_for"])
        times = start + (np.arange(1, len(s["forecast"]) + 1) * s["step_s"]).astype("timedelta64[s]")
        top.plot(times, s["forecast"], color="tab:blue", lw=1, label="forecast" if n == 0 else None)
        if s["interval"] is not None:
            top.fill_between(times, *s["interval"], color="tab:blue", alpha=0.12, lw=0)
        actual = np.array([np.nan if a is None else a for a in s["actual"]])
        top.plot(times, actual, ".", color="black", ms=3, label="actual" if n == 0 else None)
    top.set_title(f"{report['identifier']}: kept forecasts of {report['targets'][0]} against the actuals")
    top.legend(loc="upper left")
    errors = report["error_over_time"]
    for run_id in dict.fromkeys(e["run_id"] for e in errors):
        mine = [e for e in errors if e["run_id"] == run_id]
        times = [np.datetime64(e["bin_start"]) for e in mine]
        bottom.plot(times, [e["mae"] for e in mine], marker="o", label=f"model {run_id[:8]}")
        bottom.plot(times, [e["persistence_mae"] for e in mine], ls="--", label=f"persistence ({run_id[:8]})")
    bottom.set_title("MAE per 15 minutes of actuals (all horizons)")
    bottom.legend(loc="upper left")
    fig.savefig(path, dpi=110)
    plt.close(fig)
