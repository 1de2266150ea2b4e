"""Benchmark of the landmark cache at dataset scale (docs/landmark_cache.md): a synthetic cache of
`n` entries written the way `aucues landmarks --batch` writes it (one committed set() per image),
then its size, the time to open it, to decode every entry (what a training run does) and to look
single keys up. scripts/bench_landmark_cache.py runs it at 300k entries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from aucues.landmark_cache import LandmarkCache
from aucues.landmarks import Face

NO_FACE_SHARE = 0.05  # images without a face are stored as NULL rows


def synthetic_faces(n: int, seed: int = 0):
    """(key, Face | None) pairs shaped like a real dataset: AffectNet-like keys, faces of 60-3000 px
    anywhere in a 6000 px image, 68 points spread over the face, about 5 % without a face."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, (68, 2))
    for i in range(n):
        key = f"train_set/images/{i}.jpg"
        if rng.random() < NO_FACE_SHARE:
            yield key, None
            continue
        side = rng.uniform(60, 3000)
        origin = rng.uniform(0, 6000 - side, 2)
        pts = (origin + (base + rng.normal(0, 0.02, (68, 2))) * side).astype(np.float32)
        yield key, Face(box=np.r_[origin, origin + side].astype(np.float32), points=pts,
                        score=float(rng.uniform(0.5, 1)))


class _Clock:
    """Wall and CPU seconds of a block: on a shared machine the CPU time is what one free core takes."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def _bytes_written() -> int:
    """Bytes this process handed to write() so far (Linux /proc/self/io wchar; -1 elsewhere)."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return -10**18


def run_landmark_cache_bench(path, n: int = 300_000, lookups: int = 10_000, seed: int = 0) -> dict:
    """Write, size, open, decode and look up a synthetic n-entry cache at `path` (a new file)."""
    import os

    path = Path(path)
    if path.exists():
        path.unlink()
    expected, keys = {}, []
    written0 = _bytes_written()
    with _Clock() as write:
        cache = LandmarkCache(path)
        for key, face in synthetic_faces(n, seed):
            cache.set(key, face)  # one transaction each, as landmark_dataset does
            keys.append(key)
            if face is not None and len(expected) < 2000:
                expected[key] = (face.points, float(face.box[2] - face.box[0]))
        cache.close()
    size = path.stat().st_size
    written = _bytes_written() - written0

    with _Clock() as load:  # what a training run does: open, then every listed image's points
        cache = LandmarkCache(path, readonly=True)
        all_points = cache.points_many(keys)
    max_err = max(float(np.abs(all_points[k] - p).max() / side) for k, (p, side) in expected.items())
    with _Clock() as key_set:  # what a resumed `landmarks --batch` does before its first image
        in_cache = sum(1 for k in keys if k in cache)
    rng = np.random.default_rng(seed + 1)
    picks = [keys[i] for i in rng.integers(0, len(keys), lookups)]
    with _Clock() as lookup:
        for k in picks:
            cache.get(k)
    cache.close()

    # The old format (pretty JSON, 2-decimal floats) for the same entries, measured on the first
    # 2000 and scaled: writing 300k of them would take minutes and most of a gigabyte.
    sample = {k: None if f is None else {
        "box": [round(float(v), 2) for v in f.box],
        "points": [[round(float(x), 2), round(float(y), 2)] for x, y in f.points],
        "score": round(f.score, 4)} for k, f in synthetic_faces(min(n, 2000), seed)}
    json_bytes = len(json.dumps({"format": "aucues-landmarks/1", "items": sample}, indent=1))
    return {
        "entries": n, "with_face": len(all_points), "in_cache": in_cache, "file_mb": round(size / 1e6, 2),
        "bytes_per_entry": round(size / n, 1),
        "write_s": round(write.wall, 2), "write_cpu_s": round(write.cpu, 2),
        "write_us_per_entry": round(write.wall / n * 1e6, 1),
        "written_mb": round(written / 1e6, 1) if written >= 0 else None,
        "load_s": round(load.wall, 3), "load_cpu_s": round(load.cpu, 3),
        "key_set_s": round(key_set.wall, 3), "key_set_cpu_s": round(key_set.cpu, 3),
        "lookup_us": round(lookup.wall / lookups * 1e6, 1), "lookup_cpu_us": round(lookup.cpu / lookups * 1e6, 1),
        "max_error_share_of_face": max_err,
        "old_json_mb_estimate": round(json_bytes / min(n, 2000) * n / 1e6, 1),
        "load_average_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
    }
