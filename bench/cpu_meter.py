"""CPU time of the processes a benchmark drives: on a machine whose speed swings, rates alone do
not say whether the code or the machine changed, and CPU per request does not move with the
machine's load the way throughput does."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import psutil


class CpuMeter:
    """CPU seconds used by a set of processes since it was started (sampled, so processes that
    exit keep the last value seen). ``discover`` finds processes born since (a connection pool
    opening another backend mid-run): all of their CPU time counts."""

    def __init__(
        self,
        processes: Sequence[psutil.Process],
        discover: Callable[[], Sequence[psutil.Process]] | None = None,
    ) -> None:
        self._start = {p.pid: cpu_seconds(p) for p in processes}
        self._processes = list(processes)
        self._last = dict(self._start)
        self._discover = discover

    def sample(self) -> None:
        if self._discover is not None:
            for process in self._discover():
                if process.pid not in self._start:
                    self._start[process.pid] = 0.0
                    self._last[process.pid] = 0.0
                    self._processes.append(process)
        for process in self._processes:
            self._last[process.pid] = max(self._last[process.pid], cpu_seconds(process))

    def used(self) -> float:
        return float(sum(self._last[pid] - self._start[pid] for pid in self._start))


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU seconds of ``process`` so far; 0 once it is gone."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def postgres_processes(database: str) -> list[psutil.Process]:
    """The server's backends for ``database`` and its shared helpers (WAL writer, checkpointer,
    autovacuum): not the backends of other databases on a shared machine."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if not (process.info["name"] or "").startswith("postgres"):
            continue
        title = " ".join(process.info["cmdline"] or ())
        if "postgres: " in title and f" {database} " not in title and not _SHARED.search(title):
            continue
        found.append(process)
    return found


def process_tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every process under it (a server's supervisor and its workers)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


_SHARED = re.compile(r"postgres: (\S+ )?(walwriter|checkpointer|background writer|autovacuum)")
