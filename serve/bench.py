"""`aucues bench serve`: the Triton ensemble end to end against the in-process pipeline.

Closed-loop load: at concurrency C, C threads each own a client (or, in-process, a Pipeline with its
own MediaPipeLandmarker and one shared ONNX Runtime session, like the single classifier instance of the
server) and send one real face photo's encoded bytes back to back for `duration` seconds. Latency
percentiles per request, throughput = completed requests / wall time.

Variants, same ONNX, same photo, same concurrency levels, measured in alternating windows (every
server is up at once; `rounds` windows per variant and point, round-robin):
    triton-dynamic   repository as `build_repository` writes it (classifier dynamic batching on)
    triton-nobatch   the same repository with the classifier's dynamic_batching block removed
    inprocess        serve.pipeline.Pipeline in worker threads
With perf_analyzer=True, NVIDIA's perf_analyzer (serve/perf_analyzer.py) then loads the first Triton
variant at the same concurrencies with the same photo, for the same time per point: its numbers sit
beside aucues's in the payload ("perf_analyzer") and the Markdown.
With --url only the server at that URL is measured (and in-process too when an ONNX is given).
Server-side queue / compute times per model come from Triton's statistics API, as deltas over each
measured window (serve/server_stats.py); CPU ms per request of every process from psutil, read around
each window (serve/cpu_usage.py). The ratios, Markdown and plots: serve/bench_report.py."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from aucues.errors import AucuesError
from aucues.serve.bench_report import serve_ratios

Progress = Callable[[str], None]


@dataclass
class ServeBenchConfig:
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    duration: float = 10.0          # seconds of timed load per point and variant (split into rounds)
    rounds: int = 2                 # windows per point; variants alternate window by window
    protocol: str = "http"
    inprocess: bool = True
    compare_batching: bool = True   # also a repository without classifier dynamic batching
    max_batch: int = 32
    max_queue_delay_us: int = 2000
    server_timeout: float = 240.0
    landmarker: str = "mediapipe"  # in-process pipeline and built repositories (aucues.landmarks.LANDMARKERS)
    compare_landmarkers: bool = False  # also a repository whose landmark networks are served models (onnx)
    perf_analyzer: bool = False     # cross-check the first Triton variant with NVIDIA's perf_analyzer

    def __post_init__(self) -> None:
        self.concurrency = tuple(sorted(set(int(c) for c in self.concurrency)))
        if not self.concurrency or self.concurrency[0] < 1 or self.concurrency[-1] > 256:
            raise AucuesError(f"concurrency levels must be in 1..256, got {list(self.concurrency)}")
        if self.rounds < 1:
            raise AucuesError(f"rounds must be >= 1, got {self.rounds}")
        if not self.duration > 0:
            raise AucuesError(f"duration must be > 0 s, got {self.duration}")
        if self.protocol not in ("http", "grpc"):
            raise AucuesError(f"unknown protocol '{self.protocol}'; choose http or grpc")
        from aucues.landmarks import LANDMARKERS

        if self.landmarker not in LANDMARKERS:
            raise AucuesError(f"unknown landmarker '{self.landmarker}'; choose {' or '.join(LANDMARKERS)}")


# ---------------------------------------------------------------------------------------------------
# Closed-loop load


def load_test(make_worker: Callable[[int], Callable[[], object]], concurrency: int, duration: float,
              on_ready: Callable[[], None] | None = None) -> dict:
    """C threads; each builds its worker (untimed), makes one untimed call, then calls it back to back
    until `duration` has passed. `on_ready` runs once every thread is warm, right before timing."""
    ready, go = threading.Barrier(concurrency + 1), threading.Barrier(concurrency + 1)
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    lock = threading.Lock()
    state = {"deadline": 0.0}

    def worker(i: int) -> None:
        try:
            call = make_worker(i)
            call()
        except Exception as e:  # noqa: BLE001 - reported, the others keep going
            with lock:
                errors.append(f"{type(e).__name__}: {e}"[:300])
            call = None
        ready.wait()
        go.wait()
        while call is not None and time.perf_counter() < state["deadline"]:
            t0 = time.perf_counter()
            try:
                call()
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:300])
                continue
            lat[i].append((time.perf_counter() - t0) * 1000.0)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    ready.wait()
    if on_ready:
        on_ready()
    start = time.perf_counter()
    state["deadline"] = start + duration
    go.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    samples = [v for l in lat for v in l]
    out = {"_samples": samples, "concurrency": concurrency, "requests": len(samples), "errors": len(errors),
           "error_examples": sorted(set(errors))[:3], "wall_s": round(wall, 3),
           "throughput_per_s": round(len(samples) / wall, 3) if wall > 0 else 0.0}
    if samples:
        out.update({f"p{q}_ms": round(float(np.percentile(samples, q)), 2) for q in (50, 90, 99)})
        out["mean_ms"] = round(float(np.mean(samples)), 2)
    return out


# ---------------------------------------------------------------------------------------------------
# Repositories


def strip_dynamic_batching(config_text: str) -> str:
    """The config without its dynamic_batching field (cleared on the ModelConfig protobuf): Triton's
    default scheduler runs one request per execution (each request still has its batch dimension of 1)."""
    from aucues.serve.pbtxt import parse_config, to_text

    cfg = parse_config(config_text, "classifier config")
    if not cfg.HasField("dynamic_batching"):
        raise AucuesError("expected dynamic batching in the classifier config, found none")
    cfg.ClearField("dynamic_batching")
    return to_text(cfg)


def nobatch_copy(repository: Path, dest: Path) -> Path:
    from aucues.io import atomic_write_text

    shutil.copytree(repository, dest)
    cfg = dest / "classifier" / "config.pbtxt"
    atomic_write_text(cfg, strip_dynamic_batching(cfg.read_text()))
    return dest


def repository_onnx(repository: Path) -> Path | None:
    p = Path(repository) / "classifier" / "1" / "model.onnx"
    return p if p.is_file() else None


# ---------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Target:
    """One variant under load: a per-thread worker factory, an optional statistics source, and a
    clean-up run after each load window (closing the clients)."""

    name: str
    make: Callable[[int], Callable[[], object]]
    stats: Callable[[], dict] | None = None
    after_window: Callable[[], None] = lambda: None
    close: Callable[[], None] = lambda: None
    info: dict | None = None
    url: str | None = None          # Triton variants: where the server listens
    cpu: Callable[[], dict] | None = None  # CPU seconds so far by process (serve.cpu_usage.Snapshot)


def triton_target(name: str, url: str, protocol: str, data: bytes, info: dict | None = None,
                  server_pid: int | None = None) -> Target:
    from aucues.serve import cpu_usage
    from aucues.serve.client import AucuesClient
    from aucues.serve.server_stats import fetch_stats

    clients: list[AucuesClient] = []

    def make(_i: int):
        c = AucuesClient(url, protocol)  # one client per thread
        clients.append(c)
        return lambda: c.infer_raw(data)

    def after() -> None:
        for c in clients:
            c.close()
        clients.clear()

    def cpu() -> dict:  # the server and its stubs (when local) plus this process, the client
        return {**cpu_usage.server_processes(server_pid), **cpu_usage.own_process(cpu_usage.CLIENT)}

    return Target(name, make, lambda: fetch_stats(url, protocol), after, info=info, url=url, cpu=cpu)


def server_target(name: str, repository: Path, data: bytes, cfg: ServeBenchConfig, step: Progress) -> Target:
    from aucues.serve.tritonserver import TritonServer

    step(f"{name}: starting tritonserver on {repository.name}")
    server = TritonServer(repository)
    server.start(timeout=cfg.server_timeout)
    url = server.http_url if cfg.protocol == "http" else server.grpc_url
    t = triton_target(name, url, cfg.protocol, data, {"server_start_s": round(server.start_seconds or 0.0, 2)},
                      server_pid=server.pid)
    t.close = server.stop
    return t


def inprocess_target(onnx: Path, data: bytes, landmarker: str = "mediapipe") -> Target:
    from aucues.serve import cpu_usage
    from aucues.serve.pipeline import OnnxClassifier, Pipeline

    shared = OnnxClassifier(onnx)
    pipes: dict[int, Pipeline] = {}
    lock = threading.Lock()

    def make(i: int):
        with lock:
            if i not in pipes:  # one MediaPipeLandmarker per thread (MediaPipe graphs are not shared)
                # one ORT session for all, like the server's single classifier instance
                pipes[i] = Pipeline(onnx, landmarker=landmarker, classifier=shared)
        return lambda p=pipes[i]: p.predict(data)

    def close() -> None:
        for p in pipes.values():
            p.close()

    return Target("inprocess", make, close=close, cpu=lambda: cpu_usage.own_process(cpu_usage.INPROCESS))


def _merge(name: str, c: int, windows: list[dict]) -> dict:
    samples = [v for w in windows for v in w.pop("_samples")]
    wall = sum(w["wall_s"] for w in windows)
    row = {"variant": name, "concurrency": c, "rounds": len(windows), "requests": len(samples),
           "errors": sum(w["errors"] for w in windows),
           "error_examples": sorted({e for w in windows for e in w["error_examples"]})[:3],
           "wall_s": round(wall, 3), "throughput_per_s": round(len(samples) / wall, 3) if wall > 0 else 0.0,
           "round_throughputs": [w["throughput_per_s"] for w in windows]}
    if samples:
        row.update({f"p{q}_ms": round(float(np.percentile(samples, q)), 2) for q in (50, 90, 99)})
        row["mean_ms"] = round(float(np.mean(samples)), 2)
    return row


def _timed_window(t: Target, c: int, seconds: float, cpu_spent: dict[str, float]) -> dict:
    """One load window; the CPU its timed part cost (from every thread warm to every thread done) is
    added to cpu_spent by process."""
    from aucues.serve.cpu_usage import delta

    snap: dict = {}

    def ready() -> None:
        snap["before"] = t.cpu() if t.cpu else None

    try:
        res = load_test(t.make, c, seconds, on_ready=ready)
        if snap.get("before") is not None:
            for k, v in delta(snap["before"], t.cpu()).items():
                cpu_spent[k] = cpu_spent.get(k, 0.0) + v
        return res
    finally:
        t.after_window()


def measure(targets: list[Target], cfg: ServeBenchConfig, step: Progress) -> list[dict]:
    """For each concurrency: `rounds` windows of every target, round-robin, so load from other
    processes on a shared machine hits every variant alike; then one merged row per target."""
    from aucues.serve.cpu_usage import per_request
    from aucues.serve.server_stats import stats_delta

    rows = []
    window = cfg.duration / cfg.rounds
    for c in cfg.concurrency:
        windows: dict[str, list[dict]] = {t.name: [] for t in targets}
        cpu: dict[str, dict[str, float]] = {t.name: {} for t in targets}
        before = {t.name: t.stats() for t in targets if t.stats}
        for r in range(cfg.rounds):
            for t in targets:
                step(f"concurrency {c}, round {r + 1}/{cfg.rounds}: {t.name} ({window:g} s)")
                windows[t.name].append(_timed_window(t, c, window, cpu[t.name]))
        for t in targets:
            row = _merge(t.name, c, windows[t.name])
            row.update(per_request(cpu[t.name], row["requests"]) or {})
            if t.stats:
                row["server_stats"] = stats_delta(before[t.name], t.stats())
            row.update(t.info or {})
            rows.append(row)
    return rows


def run_serve_bench(*, url: str | None = None, repository: str | Path | None = None,
                    onnx: str | Path | None = None, image: str | Path | None = None,
                    cfg: ServeBenchConfig | None = None, workdir: str | Path | None = None,
                    progress: Progress | None = None) -> dict:
    """Measure every variant the inputs allow; returns the JSON-able payload."""
    cfg = cfg or ServeBenchConfig()
    step = progress or (lambda _m: None)
    if url is None and repository is None and onnx is None:
        raise AucuesError("give --url (a running server), --repository DIR or --onnx MODEL.onnx")
    if url is not None and repository is not None:
        raise AucuesError("give either --url or --repository, not both")
    if image is None:
        from aucues.assets import photo

        image = photo("astronaut.png")
    image = Path(image)
    if not image.is_file():
        raise AucuesError(f"{image}: no such image file")
    data = image.read_bytes()
    if onnx is not None and not Path(onnx).is_file():
        raise AucuesError(f"{onnx}: no such ONNX file")
    if repository is not None:
        repository = Path(repository)
        if not (repository / "aucues" / "config.pbtxt").is_file():
            raise AucuesError(f"{repository}: not an aucues model repository (build one with `aucues repository build`)")
        onnx = onnx or repository_onnx(repository)

    if cfg.perf_analyzer:
        from aucues.serve.perf_analyzer import find_perf_analyzer

        find_perf_analyzer()  # missing libraries: one line now, not after minutes of load
    notes: list[str] = []
    targets: list[Target] = []
    pa: dict | None = None
    tmp = Path(tempfile.mkdtemp(prefix="aucues-bench-serve-", dir=workdir))
    try:
        if url is not None:
            step(f"checking {url}")
            from aucues.serve.client import AucuesClient

            with AucuesClient(url, cfg.protocol) as c:
                c.check_ready()
            from aucues.serve.cpu_usage import local_server_pid

            targets.append(triton_target("triton", url, cfg.protocol, data, server_pid=local_server_pid(url)))
            notes.append("external server: its own batching settings; no on/off comparison")
        else:
            if repository is None:
                from aucues.serve.repository import build_repository

                step(f"building a repository from {Path(onnx).name}")
                repository = tmp / "dynamic"
                build_repository(repository, onnx=onnx, backend="python", max_batch=cfg.max_batch,
                                 max_queue_delay_us=cfg.max_queue_delay_us, landmarker=cfg.landmarker)
            targets.append(server_target("triton-dynamic", repository, data, cfg, step))
            if cfg.compare_batching:
                targets.append(server_target("triton-nobatch", nobatch_copy(repository, tmp / "nobatch"),
                                             data, cfg, step))
            if cfg.compare_landmarkers and onnx is not None:
                from aucues.serve.repository import build_repository

                step("building a repository with the landmark networks as served models")
                build_repository(tmp / "onnx_landmarks", onnx=onnx, backend="python", max_batch=cfg.max_batch,
                                 max_queue_delay_us=cfg.max_queue_delay_us, landmarker="onnx")
                targets.append(server_target("triton-onnx-landmarks", tmp / "onnx_landmarks", data, cfg, step))
        if cfg.inprocess:
            if onnx is None:
                notes.append("in-process pipeline skipped: no ONNX (give --onnx)")
            else:
                targets.append(inprocess_target(Path(onnx), data, cfg.landmarker))
        rows = measure(targets, cfg, step)
        if cfg.perf_analyzer:
            pa = _perf_analyzer(targets, rows, cfg, image, tmp, step)
    finally:
        for t in targets:
            try:
                t.close()
            except Exception:  # noqa: BLE001 - the other targets still get closed
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "benchmark": "serve",
        "source": {"url": url, "repository": str(repository) if repository else None,
                   "onnx": str(onnx) if onnx else None, "image": str(image), "image_bytes": len(data)},
        "config": asdict(cfg),
        "load_avg": list(os.getloadavg()),
        "rows": rows,
        "ratios": serve_ratios(rows),
        "perf_analyzer": pa,
        "notes": notes,
    }


def _perf_analyzer(targets: list[Target], rows: list[dict], cfg: ServeBenchConfig, image: Path, tmp: Path,
                   step: Progress) -> dict:
    """perf_analyzer on the first Triton variant, same photo and concurrencies, the same seconds per
    point (its 3 time windows of duration / 3), while the servers are still up."""
    from aucues.serve import perf_analyzer as pa

    target = next((t for t in targets if t.url), None)
    if target is None:
        raise AucuesError("--perf-analyzer needs a Triton server (give --repository, --onnx or --url)")
    step(f"perf_analyzer on {target.name} at concurrency {', '.join(map(str, cfg.concurrency))}")
    data = pa.write_input(image, tmp / "perf_analyzer_input.json")
    res = pa.run(target.url, cfg.protocol, data, cfg.concurrency, cfg.duration / 3)
    return {"variant": target.name, "command": res["command"], "window_s": round(cfg.duration / 3, 3),
            "rows": res["rows"], "comparison": pa.compare(rows, res["rows"], target.name)}
