"""The `flts` command: dev stack, training, evaluation, demo data, settings."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flts_streams.commands.dev_stack import Supervisor, WebAddress
    from flts_streams.forecasting.frame import PreparedFrame
    from flts_streams.forecasting.training import TrainConfig
    from flts_streams.streaming.object_store import ObjectStore

from flts_streams.core.errors import FltsError, InvalidInput
from flts_streams.core.log_throttle import throttle_repeats
from flts_streams.core.settings import Settings, child_env

log = logging.getLogger("flts_streams.commands.cli")
DEMO_IDENTIFIER = "demo"


def _say(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except OSError:  # a closed terminal (EIO) or pipe: the message has nowhere to go, the command goes on
        pass


def _tracking(settings: Settings) -> None:
    """Point MLflow at the tracking store and bound torch's threads for training in this process."""
    import torch

    from flts_streams.forecasting import packaging

    # torch's default (one thread per core) ran the demo training 3.5-5x slower on a busy 2-core machine.
    torch.set_num_threads(settings.training.threads())
    settings.paths.var_dir.mkdir(parents=True, exist_ok=True)
    packaging.configure(settings.mlflow_tracking_uri)
    packaging.ensure_experiment(
        "flts-training", settings.mlflow_artifact_root if settings.mlflow_tracking_uri.startswith("sqlite") else None
    )


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train one model (an identifier's, or the global one across many files or claims) and register it."""
    from flts_streams.forecasting.pipeline import train_and_register, train_global_and_register
    from flts_streams.forecasting.training import TrainConfig

    _check_train_args(args, settings)
    _tracking(settings)
    cfg = TrainConfig(
        kind=args.model,
        epochs=args.epochs,
        window=args.window,
        horizon=args.horizon,
        targets=tuple(args.targets.split(",")),
        seed=args.seed,
        quantiles=tuple(float(q) for q in args.quantiles.split(",") if q.strip()),
        history_days=args.history_days,
        members=args.members,
    )
    alias, progress = settings.model.champion_alias, not args.quiet
    if args.claims:
        days = args.claims_days or settings.retraining.lookback_days
        frames, data_name = _network_frames(settings, cfg, days, args.claims_sample)
        reg = train_global_and_register(
            frames,
            settings.model.global_name,
            cfg,
            alias=alias,
            promote=args.promote,
            progress=progress,
            data_name=data_name,
        )
    elif args.global_model:
        reg = train_global_and_register(
            [Path(d) for d in args.data],
            settings.model.global_name,
            cfg,
            alias=alias,
            promote=args.promote,
            progress=progress,
        )
    else:
        reg = train_and_register(
            Path(args.data[0]),
            args.identifier,
            cfg,
            registry_prefix=settings.model.registry_prefix,
            alias=alias,
            promote=args.promote,
            progress=progress,
            rival=settings.model.global_name or None,
        )
    _say(
        f"run_id={reg.run_id}\nmodel_uri={reg.model_uri}\nregistered={reg.registered_name} version={reg.version}\n"
        f"champion={'yes' if reg.promoted else 'no'} ({reg.reason})"
    )
    if args.publish:
        _publish_success(settings, reg.run_id, reg.model_uri, args.identifier, reg.model_type)
    return 0


def _check_train_args(args: argparse.Namespace, settings: Settings) -> None:
    """InvalidInput naming the fix when the arguments do not say one model and its data."""
    if args.global_model == bool(args.identifier):
        raise InvalidInput("give --identifier ID (that identifier's model) or --global (one model across the data)")
    if args.claims and not args.global_model:
        raise InvalidInput(
            "--claims trains the global model (add --global); an identifier's model retrains from its claims "
            "through `flts trainer`"
        )
    if (args.claims_sample is not None or args.claims_days is not None) and not args.claims:
        raise InvalidInput("--claims-days and --claims-sample choose among the stored claims: add --claims")
    if (args.claims_sample is not None and args.claims_sample < 1) or (
        args.claims_days is not None and args.claims_days <= 0
    ):
        raise InvalidInput("--claims-sample is a count of identifiers (1 or more), --claims-days a number above 0")
    if args.global_model and bool(args.data) == args.claims:
        raise InvalidInput("give the global model's data: --data FILE_OR_DIR ... or --claims (the stored claims)")
    if args.global_model and args.publish:
        raise InvalidInput(
            "--publish announces an identifier's model; the global model reaches every worker through its registry "
            f"alias ({settings.model.global_name}@{settings.model.champion_alias}) within a few seconds"
        )
    if not args.global_model and len(args.data or ()) != 1:
        raise InvalidInput("an identifier's model trains on one file; several files train the global model (--global)")


def _network_frames(
    settings: Settings, cfg: TrainConfig, days: float, sample: int | None
) -> tuple[list[PreparedFrame], str]:
    """Every identifier's (or a seeded sample's) claim objects of the last ``days``, joined into series (said on
    stdout); the data's name."""
    from flts_streams.forecasting.training import min_rows
    from flts_streams.streaming.claim_objects import ObjectLimits
    from flts_streams.streaming.claim_training_data import claimed_objects_by_identifier, network_data, sampled
    from flts_streams.streaming.object_store import open_store

    s, bucket = settings.streaming, settings.storage.bucket
    store = open_store(settings)
    objects = claimed_objects_by_identifier(store, bucket, s.log_prefix, time.time() - days * 86400)
    if not objects:
        raise InvalidInput(
            f"no processed claims in the last {days:g} days: no prediction logs under {bucket}/{s.log_prefix}/ "
            f"in {settings.storage_url}"
        )
    found = len(objects)
    if sample is not None:
        objects = sampled(objects, sample, cfg.seed)
    limits = ObjectLimits(s.object_max_rows, s.object_max_columns)
    data = network_data(store, objects, limits, s.object_max_bytes, cfg.features, min_rows(cfg))
    left_out = "; ".join(f"{i}: {why}" for i, why in list(data.skipped.items())[:5])
    _say(
        f"claims of the last {days:g} days: {len(data.rows)} of {len(objects)} identifiers"
        + (f" (a sample of the {found} found)" if len(objects) < found else "")
        + ", "
        f"{sum(data.rows.values())} rows in {len(data.frames)} series"
        + (f"; {len(data.skipped)} left out ({left_out}{'; ...' if len(data.skipped) > 5 else ''})" if left_out else "")
    )
    if not data.frames:
        raise InvalidInput(
            f"none of the {len(objects)} identifiers' claims holds {min_rows(cfg)} rows in a row to train on "
            f"(window {cfg.window}, horizon {cfg.horizon}); {left_out}"
        )
    return data.frames, f"claims of {len(data.rows)} identifiers, {days:g} days"


def _publish_success(settings: Settings, run_id: str, model_uri: str, identifier: str, kind: str) -> None:
    """Announce the trained model on the model-training topic."""
    from flts_streams.core.schemas import TrainingEvent
    from flts_streams.streaming.publishing import publish_training_event

    bootstrap = _bootstrap(settings)
    event = TrainingEvent(
        status="SUCCESS", run_id=run_id, model_uri=model_uri, identifier=identifier, model_type=kind, operation="train"
    )
    publish_training_event(bootstrap, settings.topics.training, event)
    _say(f"published SUCCESS to {settings.topics.training} at {bootstrap}")


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """The forecast-quality benchmark: the model against baselines (and a reference) at the same origins."""
    from flts_streams.forecasting.pipeline import evaluate

    _tracking(settings)
    r = evaluate(
        args.model,
        Path(args.data),
        Path(args.history) if args.history else None,
        stride=args.stride,
        history_rows=args.history_rows,
        reference=args.reference,
        plot=Path(args.plot) if args.plot else None,
    )
    h = r.truth.shape[1]
    _say(f"target={r.target} origins={len(r.origins)} (every {args.stride} rows) horizon=1..{h}")
    _say(f"history: at most {args.history_rows} rows before each origin, for every method")
    _say(f"| method | MAE (h1..{h}) | MAE h1 | MAE h{h} | model gain |")
    _say("|---|---|---|---|---|")
    model = r.mae("model")
    for name in r.forecasts:
        mae, by_h = r.mae(name), r.mae_by_horizon(name)
        gain = "" if name == "model" else f"{100 * (1 - model / mae):.1f}%"
        _say(f"| {name} | {mae:.4g} | {by_h[0]:.4g} | {by_h[-1]:.4g} | {gain} |")
    levels = sorted(r.quantiles)
    if len(levels) >= 2:
        cover = r.coverage(levels[0], levels[-1])
        _say(
            f"coverage of the {levels[0]:g}-{levels[-1]:g} interval: {cover.mean():.3f} overall; by horizon "
            + " ".join(f"{c:.2f}" for c in cover)
        )
        _say("pinball loss: " + ", ".join(f"q{q:g}={r.pinball(q):.4g}" for q in levels))
    return 0


def cmd_demo_data(args: argparse.Namespace, settings: Settings) -> int:
    """Write a synthetic dataset."""
    from flts_streams.forecasting.demo import demo_frame

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = demo_frame(days=args.days, seed=args.seed)
    frame.to_parquet(out, index=False) if out.suffix == ".parquet" else frame.to_csv(out, index=False)
    _say(f"wrote {len(frame)} rows to {out}")
    return 0


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    """Print every setting with its env name and default, as a Markdown table."""
    from flts_streams.core.settings_doc import settings_table

    _say(settings_table())
    return 0


def ensure_demo_model(settings: Settings, epochs: int = 8) -> str:
    """Train the demo model once (when no champion exists); returns its champion URI."""
    from flts_streams.forecasting import packaging
    from flts_streams.forecasting.demo import demo_frame
    from flts_streams.forecasting.pipeline import train_and_register
    from flts_streams.forecasting.training import TrainConfig

    _tracking(settings)
    name = packaging.registered_name(settings.model.registry_prefix, DEMO_IDENTIFIER)
    uri = packaging.champion_uri(name, settings.model.champion_alias)
    if uri:
        return uri
    path = settings.paths.var_dir / "demo" / "demo.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    demo_frame(days=10).to_csv(path, index=False)
    _say("no model yet: training the demo model on synthetic data (a few seconds) ...")
    train_and_register(
        path,
        DEMO_IDENTIFIER,
        TrainConfig(epochs=epochs, synthetic_data=True, members=1),  # one network: the first start stays quick
        registry_prefix=settings.model.registry_prefix,
        alias=settings.model.champion_alias,
    )
    return packaging.champion_uri(name, settings.model.champion_alias) or ""


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    """Broker (if needed) + demo model (if none) + supervised worker; Ctrl-C (or a hang-up) stops everything started."""
    from flts_streams.app import create_app
    from flts_streams.commands import dev_stack
    from flts_streams.kafka import embedded_broker as b

    dev_stack.hang_up_with_parent()  # `make dev` in a closed terminal: stop too, do not orphan the stack
    app = create_app(settings)
    # Faust's own settings (FLTS_WEB_PORT, FLTS_WEB_HOST, FLTS_WEB_BIND) unless a flag says otherwise.
    web = dev_stack.WebAddress(
        app.conf.web_bind, args.web_host or app.conf.web_host, args.web_port or app.conf.web_port
    )
    dev_stack.check_web_port(web)
    host, port = b.bootstrap_address(str(app.conf.broker[0]))
    var = settings.paths.var_dir
    var.mkdir(parents=True, exist_ok=True)
    env = child_env()
    embedded = dev_stack.join_or_start_broker(host, port, var / "tansu.log", _say)
    if embedded:
        # A fresh in-memory broker has no changelogs: local table state would be stale.
        shutil.rmtree(app.conf.tabledir, ignore_errors=True)
        env["FLTS_EMBEDDED__ENABLED"] = "true"
    try:
        b.ensure_topics(f"{host}:{port}", app.kafka_topics.names, settings.topics.partitions)
        if not args.no_demo and not settings.model.default_uri:
            env["FLTS_MODEL__DEFAULT_URI"] = ensure_demo_model(settings)
        supervisor = dev_stack.Supervisor(dev_stack.worker_command(web), env, _say)
        trainer = dev_stack.start_trainer(env)  # retrains on drift, outside the worker's CPU budget
        try:
            return _supervise(supervisor, web, embedded is not None)
        finally:
            dev_stack.stop_trainer(trainer)
    finally:
        if embedded:
            embedded.stop()


def _supervise(supervisor: Supervisor, web: WebAddress, embedded: bool) -> int:
    """Say where the service answers, then run the worker until stopped."""
    url = f"http://{web.host}:{web.port}"
    _say(
        f"flts dev: starting the worker on {url} (broker: {'embedded Tansu' if embedded else 'existing'})\n"
        f"  curl {url}/readyz\n"
        f"  curl -H 'Content-Type: application/json' --data @examples/predict.json {url}/predict\n"
        f"  open {url}/docs\n  Ctrl-C stops everything."
    )
    return supervisor.run()


def _bootstrap(settings: Settings) -> str:
    from flts_streams.kafka.embedded_broker import bootstrap_address

    host, port = bootstrap_address(settings.broker_url())
    return f"{host}:{port}"


def cmd_publish_claims(args: argparse.Namespace, settings: Settings) -> int:
    """Upload a data file (or reference an object) and publish claims for it."""
    import uuid

    from flts_streams.streaming.object_store import open_store, validate_key
    from flts_streams.streaming.publishing import ClaimPlan, publish_claims

    idents = [i for i in args.identifiers.split(",") if i] or [settings.serving.default_identifier]
    bucket = args.bucket or settings.storage.bucket
    objects: dict[str, str | list[str]]
    count = args.count
    if args.data:
        data = Path(args.data)
        if not data.is_file():
            raise FltsError(f"--data {data} is not a file")
        store = open_store(settings)
        if args.replay_step:
            objects = _upload_replay(store, bucket, data, idents, args.replay_span, args.replay_step)
            count = sum(len(keys) for keys in objects.values())  # one claim per object, in time order
        else:
            payload = data.read_bytes()
            objects = {i: f"claims/{i}/{data.name}" for i in idents}
            for key in objects.values():
                store.put(bucket, str(key), payload)
        uploaded = count if args.replay_step else len(objects)
        _say(f"uploaded {data} to {uploaded} object(s) in {settings.storage_url}/{bucket}")
    else:
        objects = {i: validate_key(args.object) for i in idents}
    plan = ClaimPlan(objects, count, bucket, args.ttl_ms, args.rate, keyed=args.key == "identifier")
    tag = args.tag or uuid.uuid4().hex[:8]
    summary = publish_claims(_bootstrap(settings), settings.topics.inference, plan, tag, progress=not args.quiet)
    _say(
        json.dumps(
            {
                "sent": summary.sent,
                "failed": summary.failed,
                "seconds": round(summary.seconds, 3),
                "claims_per_s": round(summary.rate, 1),
                "claim_id_prefix": tag,
                "identifiers": len(idents),
            }
        )
    )
    return 0 if summary.failed == 0 else 1


def cmd_accuracy(args: argparse.Namespace, settings: Settings) -> int:
    """Live accuracy of an identifier's claim forecasts, from a running worker."""
    from flts_streams.commands import accuracy

    report = accuracy.fetch_report(args.url or settings.worker_url(), args.identifier)
    for line in accuracy.table_lines(report):
        _say(line)
    if args.plot:
        accuracy.plot(report, Path(args.plot))
        _say(f"figure written to {args.plot}")
    return 0


def cmd_trainer(args: argparse.Namespace, settings: Settings) -> int:
    """Retrain the identifiers the drift detector names (training-requests) until stopped."""
    from flts_streams.commands import trainer

    _tracking(settings)
    bootstrap = _bootstrap(settings)
    _say(f"flts trainer: consuming {settings.topics.training_requests} at {bootstrap}; Ctrl-C stops it")
    trainer.run(settings, bootstrap)
    return 0


def _upload_replay(
    store: ObjectStore, bucket: str, data: Path, idents: list[str], span: int, step: int
) -> dict[str, str | list[str]]:
    """The data file as successive objects (the last ``span`` rows every ``step`` rows) per identifier."""
    import io

    from flts_streams.streaming.claim_objects import ObjectLimits, read_table
    from flts_streams.streaming.publishing import replay_slices

    table = read_table(data.read_bytes(), data.name, ObjectLimits(10_000_000, 4096)).to_pandas()
    slices = replay_slices(len(table), span, step)
    objects: dict[str, str | list[str]] = {}
    for ident in idents:
        keys = []
        for n, (start, stop) in enumerate(slices):
            buf = io.BytesIO()
            table.iloc[start:stop].to_parquet(buf, index=False)
            keys.append(f"claims/{ident}/{data.stem}-{n:05d}.parquet")
            store.put(bucket, keys[-1], buf.getvalue())
        objects[ident] = keys
    return objects


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run a benchmark and record it in docs/BENCHMARKS.md."""
    if importlib.util.find_spec("flts_bench") is None:  # e.g. the Docker image: it ships the runtime only
        raise FltsError(
            "the benchmarks (flts_bench/) are not installed here; run `flts bench` from a source checkout "
            "after `make install`"
        )
    if args.which == "claims":
        from flts_bench import claims

        unknown = set(args.profiles.split(",")) - set(claims.PROFILES)
        if unknown:
            raise InvalidInput(f"unknown profiles {sorted(unknown)}; choose from {sorted(claims.PROFILES)}")
        summary = claims.run(
            settings.paths.var_dir / "bench",
            args.count,
            args.identifiers or 2_000,
            Path(args.docs),
            profiles=tuple(args.profiles.split(",")),
        )
        _say(json.dumps(summary, indent=2))
        return 0
    if args.which == "scale":
        from flts_bench import scale

        summary = scale.run(
            settings.paths.var_dir / "bench",
            args.identifiers or 10_000,
            args.champions,
            Path(args.docs),
            data=Path(args.data) if args.data else None,
        )
        _say(json.dumps(summary, indent=2, default=str))
        return 0
    from flts_bench import http

    summary = http.run(
        settings.paths.var_dir / "bench", args.seconds, Path(args.docs), rounds=args.rounds, scale_free=args.scale_free
    )
    _say(json.dumps(summary["ratios"], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="flts", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run broker (if needed) + worker on embedded defaults")
    dev.add_argument(
        "--web-host", default=None, help="host in the worker's URLs (default: FLTS_WEB_HOST, else 127.0.0.1)"
    )
    dev.add_argument("--web-port", type=int, default=None, help="web port (default: FLTS_WEB_PORT, else 6066)")
    dev.add_argument("--no-demo", action="store_true", help="do not train a demo model")
    dev.set_defaults(func=cmd_dev)
    tr = sub.add_parser("train", help="train a forecaster and log it to MLflow")
    tr.add_argument(
        "--data",
        nargs="+",
        help="CSV or Parquet file; with --global several files or directories (each file one series)",
    )
    tr.add_argument(
        "--claims",
        action="store_true",
        help="with --global: train on the objects claims named (the prediction logs in the configured store say "
        "which), each identifier's joined by time",
    )
    tr.add_argument(
        "--claims-days", type=float, default=None, help="days of claims read (default: FLTS_RETRAINING__LOOKBACK_DAYS)"
    )
    tr.add_argument(
        "--claims-sample",
        type=int,
        default=None,
        help="train on this many identifiers drawn at random (seeded by --seed), not all: memory and time grow "
        "with the rows (docs/MODEL.md)",
    )
    tr.add_argument("--identifier", help="the identifier whose model this is (registered as prefix + identifier)")
    tr.add_argument(
        "--global",
        dest="global_model",
        action="store_true",
        help="train the global model across the files, scale-free, registered as FLTS_MODEL__GLOBAL_NAME",
    )
    tr.add_argument("--model", choices=("lstm", "gru"), default="lstm")
    tr.add_argument("--epochs", type=int, default=40)
    tr.add_argument("--window", type=int, default=30)
    tr.add_argument("--horizon", type=int, default=30)
    tr.add_argument("--targets", default="down", help="comma-separated target columns")
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument(
        "--quantiles",
        default="0.1,0.5,0.9",
        help="comma-separated quantile levels forecast besides the point ('' for none)",
    )
    tr.add_argument(
        "--history-days", type=int, default=7, help="days of the target's history the model reads (0: window only)"
    )
    tr.add_argument("--members", type=int, default=5, help="networks trained from consecutive seeds and averaged")
    tr.add_argument("--promote", action="store_true", help="make it the champion regardless of score")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--publish", action="store_true", help="publish a model-training SUCCESS event to the broker")
    tr.set_defaults(func=cmd_train)
    ev = sub.add_parser("evaluate", help="forecast-quality benchmark against baselines (docs/MODEL.md)")
    ev.add_argument("--model", required=True, help="runs:/<id>/model or models:/<name>@champion")
    ev.add_argument("--data", required=True, help="the test file: origins from its first row")
    ev.add_argument("--history", help="the rows just before --data (the training file)")
    ev.add_argument("--stride", type=int, default=20, help="rows between origins")
    ev.add_argument("--history-rows", type=int, default=5_040, help="rows before an origin any method may read")
    ev.add_argument("--reference", choices=["lightgbm"], help="also fit the reference model (the 'reference' extra)")
    ev.add_argument("--plot", help="PNG path: error by hour and horizon, fan chart")
    ev.set_defaults(func=cmd_evaluate)
    dd = sub.add_parser("demo-data", help="write a synthetic dataset")
    dd.add_argument("--out", default="var/demo/demo.csv")
    dd.add_argument("--days", type=int, default=14)
    dd.add_argument("--seed", type=int, default=0)
    dd.set_defaults(func=cmd_demo_data)
    pc = sub.add_parser("publish-claims", help="upload data and publish claim-check messages to inference-data")
    src = pc.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="CSV or Parquet file to upload (one object per identifier)")
    src.add_argument("--object", help="key of an object already in the store")
    pc.add_argument("--identifiers", default="", help="comma-separated identifiers (claims go round-robin)")
    pc.add_argument("--count", type=int, default=1, help="number of claims")
    pc.add_argument("--bucket", default="", help="bucket (default: the configured one)")
    pc.add_argument("--ttl-ms", type=int, default=None, help="deadline_ms header = now + TTL")
    pc.add_argument("--rate", type=float, default=None, help="claims per second (default: as fast as possible)")
    pc.add_argument("--key", choices=("identifier", "none"), default="identifier", help="message key")
    pc.add_argument("--tag", default="", help="claim_id prefix (default: random)")
    pc.add_argument(
        "--replay-step",
        type=int,
        default=0,
        help="replay --data in time order: one object and claim every this many rows (the --count is then theirs)",
    )
    pc.add_argument("--replay-span", type=int, default=1440, help="rows each replayed object holds (default two days)")
    pc.add_argument("--quiet", action="store_true", help="no progress bar")
    pc.set_defaults(func=cmd_publish_claims)
    be = sub.add_parser("bench", help="benchmarks against baselines measured in the same run")
    be.add_argument("which", choices=("http", "claims", "scale"))
    be.add_argument("--count", type=int, default=100_000, help="claims: burst size")
    be.add_argument(
        "--identifiers", type=int, default=None, help="claims: identifiers of the burst (2,000); scale: cells (10,000)"
    )
    be.add_argument(
        "--profiles", default="embedded,batching", help="claims: producer profiles, embedded and/or batching"
    )
    be.add_argument("--champions", type=int, default=1_000, help="scale: identifiers with a champion of their own")
    be.add_argument("--data", default=None, help="scale: a data file the cells are copied from (default: demo data)")
    be.add_argument(
        "--seconds", type=float, default=8.0, help="http: measurement time per server and level, split over the rounds"
    )
    be.add_argument("--rounds", type=int, default=3, help="http: interleaved rounds (ratios are taken within each)")
    be.add_argument("--scale-free", action="store_true", help="http: serve the global model, not an own champion")
    be.add_argument("--docs", default="docs", help="where BENCHMARKS.md and the plot go")
    be.set_defaults(func=cmd_bench)
    ac = sub.add_parser("accuracy", help="live accuracy of an identifier's claim forecasts (a running worker)")
    ac.add_argument("identifier")
    ac.add_argument("--url", default=None, help="a worker's address (default: FLTS_WEB_HOST/FLTS_WEB_PORT)")
    ac.add_argument("--plot", default=None, help="write a figure (PNG) of forecasts vs actuals and error over time")
    ac.set_defaults(func=cmd_accuracy)
    tn = sub.add_parser("trainer", help="retrain identifiers named on training-requests (a process of its own)")
    tn.set_defaults(func=cmd_trainer)
    st = sub.add_parser("settings", help="print all settings as a Markdown table")
    st.set_defaults(func=cmd_settings)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `flts` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    throttle_repeats(settings.log_repeat_s)  # `flts trainer` consumes from the broker too
    try:
        return int(args.func(args, settings))
    except FltsError as exc:
        log.error("%s", exc)
        return 2
