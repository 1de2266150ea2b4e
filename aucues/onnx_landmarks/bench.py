"""Per-image landmark time, ONNX vs MediaPipe, on the same images in one run (docs/benchmarks.md).

Rounds interleave the two landmarkers (image by image) so that load from other processes on a shared
machine hits both alike; the ratio of medians is the number to quote. Also times the ONNX one with all
images in one detect_many call (its batched path).

    python -m aucues.onnx_landmarks.bench [--rounds N] [IMAGE ...]   (default: the shipped photos)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def compare(images: dict[str, np.ndarray], rounds: int = 10) -> dict:
    from aucues.landmarks import MediaPipeLandmarker
    from aucues.onnx_landmarks.landmarker import OnnxLandmarker

    mp, ox = MediaPipeLandmarker(), OnnxLandmarker()
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
    # Paired ratios (docs/benchmarks.md): the median over rounds of onnx_i / mediapipe_i, whose two
    # calls ran back to back, so a burst of load from another process hits both.
    paired = lambda a, b: round(float(np.median(np.asarray(a) / np.asarray(b))), 3)  # noqa: E731
    out = {"rounds": rounds, "load_average": [round(v, 2) for v in os.getloadavg()], "per_image_ms": {}}
    for name in images:
        m, o = (1e3 * float(np.median(t[k][name])) for k in ("mediapipe", "onnx"))
        out["per_image_ms"][name] = {"mediapipe_p50": round(m, 2), "onnx_p50": round(o, 2),
                                     "paired_ratio": paired(t["onnx"][name], t["mediapipe"][name])}
    per_round = {k: np.sum([t[k][n] for n in images], axis=0) for k in t}  # all images, per round
    out["all_images_paired_ratio_onnx_over_mediapipe"] = paired(per_round["onnx"], per_round["mediapipe"])
    out["batched_detect_many_paired_ratio_over_mediapipe"] = paired(batch, per_round["mediapipe"])
    out["batched_ms_per_image_p50"] = round(1e3 * float(np.median(batch)) / len(images), 2)
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
