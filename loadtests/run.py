"""Headless Locust run: writes Locust's CSVs and a short summary; exits 1 on any failure."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def summarize(prefix: Path) -> dict:
    """Aggregate row of Locust's stats CSV."""
    with open(f"{prefix}_stats.csv") as fh:
        rows = list(csv.DictReader(fh))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
        "p99_ms": float(total["99%"]),
        "by_name": {
            r["Name"]: {
                "requests": int(r["Request Count"]),
                "failures": int(r["Failure Count"]),
                "p99_ms": float(r["99%"]),
            }
            for r in rows
            if r["Name"] != "Aggregated"
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run Locust headless and print a JSON summary."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="http://127.0.0.1:6066")
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--spawn-rate", type=float, default=16)
    p.add_argument("--run-time", default="30s")
    p.add_argument("--out", default=str(HERE / "results" / "run"))
    args = p.parse_args(argv)
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--host",
        args.host,
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        args.run_time,
        "--csv",
        str(prefix),
        "--only-summary",
        "--exit-code-on-error",
        "0",
    ]
    subprocess.run(cmd, check=True, cwd=HERE.parent)
    summary = summarize(prefix)
    Path(f"{prefix}_summary.json").write_text(json.dumps(summary, indent=2))
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
