"""Composition root: Settings() -> FltsApp with its services, topics and metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import faust
from faust import transport
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from mode import ServiceT

from flts_streams.core.metrics import FaustMonitor, Metrics
from flts_streams.core.process_tuning import StartupHeapFreezer
from flts_streams.core.settings import APP_ID, FAUST_ENV_PREFIX, Settings
from flts_streams.kafka import seek_safe_consumer
from flts_streams.kafka.flow_control import FlowSensor
from flts_streams.kafka.topics import Topics, declare_topics
from flts_streams.models.predictor import Predictor
from flts_streams.models.registry import ModelRegistry
from flts_streams.serving.admission import Admission
from flts_streams.serving.body_budget import BodyBudget
from flts_streams.serving.readiness import BrokerWatch
from flts_streams.streaming.live_accuracy import HeldForecasts

AUTODISCOVER = ("tables", "agents", "web")


class FltsApp(faust.App):
    """The Faust app with typed access to settings, topics, metrics, the model registry and the predictor."""

    settings: Settings
    metrics: Metrics
    kafka_topics: Topics  # `topics` is taken by Faust (its TopicConductor)
    models: ModelRegistry
    predictor: Predictor
    admission: Admission
    flow: FlowSensor
    broker_watch: BrokerWatch
    body_budget: BodyBudget

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        conf = settings.faust_defaults() | {"web_application_options": web_application_options(settings)} | overrides
        super().__init__(APP_ID, env_prefix=FAUST_ENV_PREFIX, autodiscover=AUTODISCOVER, origin="flts_streams", **conf)
        self.settings = settings
        self.metrics = Metrics()
        # Faust's own sensor shares our registry so /metrics serves both.
        self.monitor = FaustMonitor(self.metrics.registry)
        self.kafka_topics = declare_topics(self, settings.topics)
        self.flow = FlowSensor(self.metrics, (settings.topics.inference, settings.topics.training))
        self.sensors.add(self.flow)
        self.models = ModelRegistry(settings, self.metrics)
        self.predictor = Predictor(settings, self.metrics, self.models)
        self.admission = Admission(settings.serving.max_in_flight, self.metrics)
        self.heap_freezer = StartupHeapFreezer(self.models.initial_load_done)
        self.broker_watch = BrokerWatch(settings.serving.broker_grace_s)
        self.body_budget = BodyBudget(settings.serving.max_buffered_body_bytes)
        # Forecasts of GET /predict/{id} waiting for the identifier's next claim (FLTS_ACCURACY__REMEMBER_CACHED).
        self.held_forecasts = HeldForecasts(settings.accuracy.forecasts_kept)
        # aiohttp middlewares registered by web/ (e.g. the error mapper) before the server starts.
        self.http_middlewares: list[Any] = []

    def _new_transport(self) -> TransportT:
        """Faust's consumer transport, with our safe seek-back when it is the aiokafka one."""
        cls = transport.by_url(self.conf.broker_consumer[0])
        cls = seek_safe_consumer.SeekSafeTransport if cls is faust_aiokafka.Transport else cls
        return cls(self.conf.broker_consumer, self)

    def on_webserver_init(self, web: Any) -> None:
        """Install registered middlewares on Faust's aiohttp application (once each)."""
        # Faust calls this on every init_server(): after autodiscovery and again when the web
        # service starts. Extending blindly ran each request through the middleware 3 times
        # (3x its CPU, and every flts_http_* metric counted 3x).
        installed = web.web_app.middlewares
        installed.extend([m for m in self.http_middlewares if m not in installed])

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """Start the model registry, the predictor and the start-up heap freeze with the app."""
        return [*super().on_init_dependencies(), self.models, self.predictor, self.heap_freezer]


def web_application_options(settings: Settings) -> dict[str, Any]:
    """aiohttp Application options: body size limit, and bodies never inflated by the server.

    aiohttp inflates Content-Encoding: gzip/deflate bodies as they arrive, on the event loop and
    before any size check: 1 MB of gzip (1 GiB inflated) froze the worker for 6-7 s. /predict
    refuses encoded bodies instead (415, flts_streams/serving/predict_request.py).
    """
    # keepalive_timeout also bounds a connection that never completes its headers (aiohttp arms it at
    # connect): its default, 3,630 s, let 200 slowloris connections sit for as long.
    return {
        "client_max_size": settings.serving.max_body_bytes,
        "handler_args": {"auto_decompress": False, "keepalive_timeout": settings.serving.idle_timeout_s},
    }


def create_app(settings: Settings | None = None, **overrides: Any) -> FltsApp:
    """Build the app from settings (environment by default)."""
    settings = settings or Settings()
    logging.getLogger("flts_streams").setLevel(settings.log_level)
    return FltsApp(settings, **overrides)


app = create_app()
