"""CPU time per request, process by process, for `aucues bench serve` (issue 17).

On a CPU host the ensemble's throughput is bounded by the CPU time one request costs in all the
processes it runs through: tritonserver (HTTP/gRPC front end, ensemble scheduling), every
Python-backend stub (preprocess, classifier, postprocess, the landmark models) and the client. So
besides throughput, the benchmark reads each process's user + system CPU seconds (psutil, /proc on
Linux) right before and right after every timed window, and divides by the requests completed in it.

Two things follow that throughput alone does not give:
- where the time goes (which model, the server, the client), and
- a ceiling: cores x 1000 / (CPU ms per request) requests/s, which the measured throughput meets
  when the host is CPU-bound.
It is also steadier than throughput on a shared machine: other tenants slow a request down, but
they add little to the CPU seconds it is charged.

Stub processes are told apart by their argv (`<repository>/<model>/<version>/model.py`, the same
reading as serve.watchdog); instances of one model are summed. A process that exits within a window
loses its share (a stub restart), which is rare and only makes the total lower."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

CLIENT = "client (aucues bench)"
INPROCESS = "in-process pipeline"
SERVER = "tritonserver"

Snapshot = dict[int, tuple[str, float]]  # pid -> (label, cpu seconds so far)


def _cpu_seconds(proc) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def own_process(label: str) -> Snapshot:
    """This process (every thread of it) under `label`."""
    import psutil

    return {os.getpid(): (label, _cpu_seconds(psutil.Process()))}


def server_processes(server_pid: int | None) -> Snapshot:
    """tritonserver and each of its Python-backend stubs, labelled by model; {} when unknown or gone."""
    import psutil

    from aucues.serve.watchdog import stub_models

    if server_pid is None:
        return {}
    out: Snapshot = {}
    try:
        out[server_pid] = (SERVER, _cpu_seconds(psutil.Process(server_pid)))
    except psutil.Error:
        return {}
    for pid, (model, alive) in stub_models(server_pid, None).items():
        if not alive or not model:
            continue
        try:
            out[pid] = (model, _cpu_seconds(psutil.Process(pid)))
        except psutil.Error:
            continue
    return out


def local_server_pid(url: str) -> int | None:
    """The pid of the tritonserver listening on a loopback URL (host:port), else None: a remote
    server's processes cannot be read, and listing sockets may be refused."""
    import psutil

    parts = urlsplit(url if "//" in url else f"//{url}")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return None
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == parts.port and c.pid:
                if psutil.Process(c.pid).name().startswith(SERVER):
                    return int(c.pid)
    except (psutil.Error, OSError):
        return None
    return None


def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by label (a pid new since `before` counts from 0)."""
    out: dict[str, float] = {}
    for pid, (label, sec) in after.items():
        prev = before.get(pid)
        spent = sec - (prev[1] if prev and prev[0] == label else 0.0)
        if spent > 0:
            out[label] = out.get(label, 0.0) + spent
    return out


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def per_request(seconds: dict[str, float], requests: int, cores: int | None = None) -> dict | None:
    """The row fields: CPU ms per request by process, their total, and the CPU-bound ceiling."""
    if requests <= 0 or not seconds:
        return None
    cores = cores or usable_cores()
    by = {k: round(v * 1000.0 / requests, 2) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}
    total = sum(seconds.values()) * 1000.0 / requests
    return {"cpu_ms_per_request": by, "cpu_ms_total": round(total, 2), "cores": cores,
            "cpu_bound_per_s": round(cores * 1000.0 / total, 1) if total > 0 else None}
