"""Time aucues.au_maps.au_map per kind on one core (docs/au_maps.md records the numbers).

    .venv/bin/python scripts/bench_au_maps.py [--sets 200] [--repeat 3] [--size 224] [--out runs/bench/au_maps.json]

Landmarks: the mean face of aucues.au_regions.template_points moved by random similarity transforms
(scale 0.85-1.15, rotation +-10 degrees, shift +-12 px at 224) plus 2 px per-point noise: plausible
aligned faces, every one different. Each (kind, class) is timed over all sets, `repeat` rounds, and the
per-call median / mean / p95 are reported. "class (literal)" times the same class maps through the
plain full-crop path of docs/method.md §4 (draw, area-resize, blur, resize back) for comparison.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # one thread: the number is per core

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aucues import au_maps, au_regions  # noqa: E402
from aucues.benchmark import cpu_model  # noqa: E402
from aucues.io import atomic_write_json  # noqa: E402
from aucues.labels import CLASS_NAMES  # noqa: E402


def landmark_sets(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = au_regions.template_points(size).astype(np.float64)
    c = size / 2.0
    out = []
    for _ in range(n):
        a = np.deg2rad(rng.uniform(-10, 10))
        s = rng.uniform(0.85, 1.15)
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        shift = rng.uniform(-12, 12, 2) * size / 224
        pts = (base - c) @ rot.T + c + shift + rng.normal(0, 2 * size / 224, base.shape)
        out.append(pts.astype(np.float32))
    return out


def time_calls(fn, sets, repeat: int) -> np.ndarray:
    fn(sets[0])  # warm caches (coordinate grids, cv2)
    times = []
    for _ in range(repeat):
        for p in sets:
            t0 = time.perf_counter()
            fn(p)
            times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=200, help="random landmark sets per (kind, class)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/au_maps.json"))
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(1)
    sets = landmark_sets(args.sets, args.size)
    rows = []

    def add(kind, label, fn):
        t = time_calls(fn, sets, args.repeat)
        rows.append({"kind": kind, "class": label, "calls": int(t.size), "median_ms": round(float(np.median(t)), 4),
                     "mean_ms": round(float(t.mean()), 4), "p95_ms": round(float(np.percentile(t, 95)), 4)})

    for c in range(1, len(CLASS_NAMES)):
        add("class", CLASS_NAMES[c], lambda p, c=c: au_maps.au_map(p, c, args.size, kind="class"))
    fast = au_maps._smooth_fast
    au_maps._smooth_fast = au_maps._smooth_literal  # the plain §4 path, for comparison
    try:
        for c in (1, 4):
            add("class (literal)", CLASS_NAMES[c], lambda p, c=c: au_maps.au_map(p, c, args.size, kind="class"))
    finally:
        au_maps._smooth_fast = fast
    add("generic", "-", lambda p: au_maps.au_map(p, 0, args.size, kind="generic"))
    add("per_class", "-", lambda p: au_maps.au_map(p, 0, args.size, kind="per_class"))
    add("landmarks", "no jaw", lambda p: au_maps.au_map(p, 0, args.size, kind="landmarks"))
    add("landmarks", "jaw", lambda p: au_maps.au_map(p, 0, args.size, kind="landmarks", jaw=True))

    print(f"au_map, {args.size}x{args.size}, one thread, {args.sets} landmark sets x {args.repeat} rounds")
    print(f"{'kind':<16} {'class':<10} {'median ms':>10} {'mean ms':>9} {'p95 ms':>8}")
    for r in rows:
        print(f"{r['kind']:<16} {r['class']:<10} {r['median_ms']:>10.3f} {r['mean_ms']:>9.3f} {r['p95_ms']:>8.3f}")
    report = {
        "benchmark": "au_maps", "size": args.size, "sets": args.sets, "repeat": args.repeat, "threads": 1,
        "cpu": cpu_model(), "cores_visible": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "opencv": cv2.__version__, "rows": rows,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    atomic_write_json(args.out, report)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
