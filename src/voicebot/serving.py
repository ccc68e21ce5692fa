"""``voicebot serve --workers N``: N processes serving one port, each listening on a socket of its
own, so that the kernel spreads the connections evenly over them.

uvicorn's own supervisor binds one socket and hands it to every worker. Every worker then waits
on the same queue of connections, and the first awake takes all those waiting: a client that
opened 20 connections at once often found all of them on one worker, which served them from one
core while the other idled. Here each worker binds the port with SO_REUSEPORT, and Linux assigns
each new connection to one of the sockets by a hash of its addresses. (In bench/api.py, runs in
alternation: the p95 of a page of calls had a median of 58 ms over eight runs with the shared
socket, and of 45 ms over eleven with a socket per worker.)

The supervisor replaces a worker that dies, stops them all on SIGINT or SIGTERM (each finishing
the requests it has in hand), and gives up, rather than restart in a loop, when a worker fails
before serving.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)

# How long the workers have to finish the requests in hand once told to stop.
STOP_SECONDS = 30.0
_BACKLOG = 2048
_spawn = multiprocessing.get_context("spawn")


def supported() -> bool:
    """Whether sockets here can share a port (SO_REUSEPORT spreading connections: Linux)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def check_port_free(host: str, port: int) -> None:
    """Raise ``OSError`` (address in use) when something listens on ``host:port`` already.

    Sockets bound with SO_REUSEPORT by the same user share a port without complaint, so the
    workers would otherwise join an older server's listeners and split its connections with it.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        probe.bind((host, port))


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` beside the other workers' (SO_REUSEPORT)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass(frozen=True)
class WorkerSpec:
    """What each worker serves: an ASGI app factory by import path, with uvicorn's options."""

    app_factory: str
    host: str
    port: int
    options: dict[str, Any]


def _serve_one(spec: WorkerSpec) -> None:
    """A worker's life: its own socket on the port, then uvicorn until told to stop."""
    import uvicorn

    config = uvicorn.Config(spec.app_factory, factory=True, **spec.options)
    server = uvicorn.Server(config)
    try:
        sock = listening_socket(spec.host, spec.port)
    except OSError as exc:
        log.error("worker %d cannot listen on %s:%d: %s", os.getpid(), spec.host, spec.port, exc)
        sys.exit(STARTUP_FAILURE)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Runs ``count`` workers of ``spec`` until SIGINT or SIGTERM; see the module."""

    def __init__(self, spec: WorkerSpec, count: int, *, poll_seconds: float = 0.5) -> None:
        self._spec = spec
        self._count = count
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._workers: list[SpawnProcess] = []

    def run(self) -> int:
        """Serve until told to stop; 0 then, 1 when a worker failed before serving."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            log.info("starting %d workers (parent process %d)", self._count, os.getpid())
            self._workers = [self._start() for _ in range(self._count)]
            failed = False
            while not failed and not self._stop.wait(self._poll):
                failed = self._replace_dead_workers()
            self._stop_all()
            return 1 if failed else 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping the workers", signal.Signals(signum).name)
        self._stop.set()

    def _start(self) -> SpawnProcess:
        worker = _spawn.Process(target=_serve_one, args=(self._spec,), name="voicebot-worker")
        worker.start()
        return worker

    def _replace_dead_workers(self) -> bool:
        """Start a new worker for each that died; True (replace none) when one failed before it
        served, which every replacement would too (a broken app, an unusable address)."""
        for index, worker in enumerate(self._workers):
            if worker.is_alive() or self._stop.is_set():
                continue
            worker.join()
            if worker.exitcode == STARTUP_FAILURE:
                log.error("worker %d failed before serving; stopping", worker.pid)
                return True
            log.error("worker %d exited (code %s); starting another", worker.pid, worker.exitcode)
            self._workers[index] = self._start()
        return False

    def _stop_all(self) -> None:
        for worker in self._workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.error("worker %d did not stop in %.0f s; killing it", worker.pid, STOP_SECONDS)
                worker.kill()
                worker.join()
