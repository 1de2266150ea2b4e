"""`aucues bench preprocess`: landmarks (MediaPipe) + alignment per image on real photos.

cold: a new MediaPipeLandmarker per call (graph construction + first detect + align), what a one-shot CLI
      run or a freshly started server instance pays;
warm: the same landmarker reused, detect and align timed separately, images interleaved round-robin.
The photos differ in size and face count, which is what drives the cost (the detector tiles large
images, and face mesh runs once per face)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from aucues.errors import AucuesError

Progress = Callable[[str], None]


def _load(paths: list[Path]) -> dict[str, np.ndarray]:
    from aucues.io import read_image

    images = {}
    for p in paths:
        if not Path(p).is_file():
            raise AucuesError(f"{p}: no such image file")
        images[Path(p).name] = read_image(p)
    return images


def run_preprocess_bench(images: list[str | Path] | None = None, *, runs: int = 10, cold_runs: int = 2,
                         warmup: int = 1, size: int | None = None, progress: Progress | None = None) -> dict:
    """Cold and warm timings per image; returns the JSON-able payload."""
    from aucues.align import align_face
    from aucues.benchmark import Timing, interleaved
    from aucues.landmarks import MediaPipeLandmarker
    from aucues.preprocessing import PreprocessConfig

    step = progress or (lambda _m: None)
    if runs < 1 or cold_runs < 1 or warmup < 0:
        raise AucuesError("runs and cold runs must be >= 1, warmup >= 0")
    if not images:
        from aucues.assets import available_photos

        images = available_photos()
        if not images:
            raise AucuesError("no images given and no sample photos gathered; run `make setup` or pass IMAGES")
    size = int(size or PreprocessConfig().image_size)
    template = PreprocessConfig().template
    loaded = _load([Path(p) for p in images])

    # The module import happens once per process; it is reported apart, not in every cold call.
    t0 = time.perf_counter()
    import mediapipe  # noqa: F401

    import_ms = (time.perf_counter() - t0) * 1000.0
    # Cold: construction + first detection + alignment, a fresh landmarker every time.
    cold: dict[str, Timing] = {n: Timing(f"{n} cold", 1) for n in loaded}
    construct: list[float] = []
    faces_found: dict[str, int] = {}
    for r in range(cold_runs):
        for name, rgb in loaded.items():
            step(f"cold {r + 1}/{cold_runs}: {name}")
            t0 = time.perf_counter()
            lm = MediaPipeLandmarker()
            t1 = time.perf_counter()
            faces = lm.detect(rgb)
            if faces:
                align_face(rgb, faces[0].points, size, template)
            t2 = time.perf_counter()
            lm.close()
            construct.append((t1 - t0) * 1000.0)
            cold[name].samples_ms.append((t2 - t0) * 1000.0)
            faces_found[name] = len(faces)

    # Warm: one landmarker, detect and align timed as separate variants, images round-robin.
    step(f"warm: {runs} interleaved rounds of {len(loaded)} images")
    lm = MediaPipeLandmarker()
    try:
        first = {n: lm.detect(rgb) for n, rgb in loaded.items()}
        fns: dict[str, Callable[[], object]] = {}
        for name, rgb in loaded.items():
            fns[f"{name} detect"] = lambda rgb=rgb: lm.detect(rgb)
            if first[name]:
                pts = first[name][0].points
                fns[f"{name} align"] = lambda rgb=rgb, pts=pts: align_face(rgb, pts, size, template)
        warm = interleaved(fns, batch=1, warmup=warmup, runs=runs)
    finally:
        lm.close()

    rows = []
    for name, rgb in loaded.items():
        h, w = rgb.shape[:2]
        det = warm[f"{name} detect"]
        al = warm.get(f"{name} align")
        rows.append({
            "image": name, "width": w, "height": h, "megapixels": round(h * w / 1e6, 3),
            "faces": faces_found[name],
            "cold_p50_ms": round(cold[name].p50, 2),
            "warm_detect_p50_ms": round(det.p50, 2), "warm_detect_p90_ms": round(det.p90, 2),
            "warm_detect_p99_ms": round(det.p99, 2),
            "warm_align_p50_ms": round(al.p50, 3) if al else None,
            "warm_total_p50_ms": round(det.p50 + (al.p50 if al else 0.0), 2),
            "warm_per_s": round(1000.0 / (det.p50 + (al.p50 if al else 0.0)), 2),
            "cold_over_warm": round(cold[name].p50 / (det.p50 + (al.p50 if al else 0.0)), 2),
        })
    return {
        "benchmark": "preprocess",
        "images": [str(p) for p in images],
        "config": {"runs": runs, "cold_runs": cold_runs, "warmup": warmup, "align_size": size},
        "load_avg": list(os.getloadavg()),
        "mediapipe_import_ms": round(import_ms, 1),
        "landmarker_construct_ms": {"p50": round(float(np.median(construct)), 2),
                                    "max": round(float(np.max(construct)), 2)},
        "rows": rows,
        "timings": {k: t.summary() for k, t in {**warm, **cold}.items()},
    }


def write_preprocess_results(payload: dict, out_dir: str | Path) -> dict[str, str]:
    from aucues.benchmark import line_plot, markdown_table, write_results

    out = Path(out_dir)
    rows = sorted(payload["rows"], key=lambda r: r["megapixels"])
    md = "# aucues bench preprocess\n\n" \
         f"MediaPipeLandmarker construction p50 {payload['landmarker_construct_ms']['p50']} ms (mediapipe import " \
         f"{payload['mediapipe_import_ms']} ms, once per process, not in the cold column); load average " \
         f"{', '.join(f'{v:.2f}' for v in payload['load_avg'])}\n\n"
    md += markdown_table(rows, ["image", "width", "height", "faces", "cold_p50_ms", "warm_detect_p50_ms",
                                "warm_detect_p90_ms", "warm_align_p50_ms", "warm_total_p50_ms", "warm_per_s",
                                "cold_over_warm"])
    paths = write_results(out, "preprocess", payload, md)
    xs = [r["megapixels"] for r in rows]
    line_plot(out / "preprocess_latency.png",
              {"cold (new landmarker)": (xs, [r["cold_p50_ms"] for r in rows]),
               "warm detect": (xs, [r["warm_detect_p50_ms"] for r in rows]),
               "warm align": (xs, [r["warm_align_p50_ms"] or 0.0 for r in rows])},
              "image size (megapixels)", "p50 latency (ms)", "Landmarks + alignment per image")
    paths["latency_plot"] = str(out / "preprocess_latency.png")
    return paths
