"""Per-image landmark time, ONNX vs MediaPipe, on the same images in one run (docs/benchmarks.md).

Rounds interleave the two landmarkers (image by image) so that load from other processes on a shared
machine hits both alike; the ratio of medians is the number to quote. Also times the ONNX one with all
images in one detect_many call (its batched path).

    python -m aucues.onnx_landmarks.bench [--rounds N] [IMAGE ...]   (default: the shipped photos)
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def compare(images: dict[str, np.ndarray], rounds: int = 10) -> dict:
    from aucues.landmarks import FaceLandmarker
    from aucues.onnx_landmarks.landmarker import OnnxFaceLandmarker

    mp, ox = FaceLandmarker(), OnnxFaceLandmarker()
    for img in images.values():  # warm-up: first calls allocate
        mp.detect(img)
        ox.detect(img)
    t = {k: {n: [] for n in images} for k in ("mediapipe", "onnx")}
    batch = []
    for _ in range(rounds):
        for name, img in images.items():
            for kind, lm in (("mediapipe", mp), ("onnx", ox)):
                t0 = time.perf_counter()
                lm.detect(img)
                t[kind][name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ox.detect_many(list(images.values()))
        batch.append(time.perf_counter() - t0)
    mp.close()
    ox.close()
    out = {"rounds": rounds, "per_image_ms": {}, "batched_ms_per_image": 1e3 * float(np.median(batch)) / len(images)}
    for name in images:
        m, o = (1e3 * float(np.median(t[k][name])) for k in ("mediapipe", "onnx"))
        out["per_image_ms"][name] = {"mediapipe": round(m, 2), "onnx": round(o, 2), "ratio": round(o / m, 3)}
    tot = {k: sum(float(np.median(t[k][n])) for n in images) for k in t}
    out["total_ratio_onnx_over_mediapipe"] = round(tot["onnx"] / tot["mediapipe"], 3)
    out["batched_ratio_onnx_over_mediapipe"] = round(out["batched_ms_per_image"] * len(images) / 1e3 / tot["mediapipe"], 3)
    return out


def main(argv=None) -> None:
    import json

    from aucues.assets import available_photos
    from aucues.io import read_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args(argv)
    paths = a.images or [str(p) for p in available_photos()]
    images = {p.rsplit("/", 1)[-1]: read_image(p) for p in paths}
    print(json.dumps(compare(images, a.rounds), indent=2))


if __name__ == "__main__":
    main()
