"""A bounded load test: 8 concurrent clients for 20 s on loopback, zero errors, and the memory of the
server (tritonserver + its Python backend stubs) grows < 10% after warm-up."""

from __future__ import annotations

import threading
import time

import pytest

CLIENTS = 8
DURATION_S = 20.0
WARMUP_S = 5.0


def _tree_rss(pid: int) -> int:
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _hammer(url: str, protocol: str, data: bytes, seconds: float, stats: dict, lock: threading.Lock):
    from aucues.serve.client import AucuesClient

    with AucuesClient(url, protocol) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                client.infer_raw(data, ("label", "probabilities", "au_evidence"))
                ok = True
            except Exception as e:  # noqa: BLE001 - every failure counts
                ok = False
                with lock:
                    stats["errors"].append(str(e))
            with lock:
                stats["n"] += ok
                stats["lat"].append(time.perf_counter() - t)


def _run(triton, data, seconds):
    stats = {"n": 0, "errors": [], "lat": []}
    lock = threading.Lock()
    threads = [threading.Thread(target=_hammer, args=(triton.http_url if i % 2 == 0 else triton.grpc_url,
                                                      "http" if i % 2 == 0 else "grpc", data, seconds, stats, lock))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


@pytest.mark.slow
def test_load_no_errors_no_leak(triton, astronaut_bytes):
    _run(triton, astronaut_bytes, WARMUP_S)
    rss0 = _tree_rss(triton.pid)
    stats = _run(triton, astronaut_bytes, DURATION_S)
    rss1 = _tree_rss(triton.pid)
    lat = sorted(stats["lat"])
    print(f"\nload: {stats['n']} requests in {DURATION_S:.0f} s ({stats['n'] / DURATION_S:.1f}/s), "
          f"p50 {lat[len(lat) // 2] * 1e3:.0f} ms, p95 {lat[int(len(lat) * 0.95)] * 1e3:.0f} ms, "
          f"RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB")
    assert not stats["errors"], stats["errors"][:3]
    assert stats["n"] > 20
    assert rss1 < 1.10 * rss0, f"server memory grew {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB"
    assert triton.is_ready()
