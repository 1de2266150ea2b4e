"""`aucues bench landmarks`: the ONNX landmark networks on CUDA and TensorRT (through ONNX Runtime,
the way a GPU host's Triton serves them: platform onnxruntime_onnx, TensorRT FP16 accelerator), against
ONNX Runtime on the CPU (issue 17, items 1 and 5).

Per provider:
- latency per network at each batch size (random inputs in the network's range, median of `runs`);
- output parity per network vs the CPU on the real batches the landmarker builds from the photos
  (max |diff|, cosine);
- landmark parity: OnnxLandmarker on this provider vs on the CPU, photo by photo: the same faces and
  the mean 68-point distance as a share of the outer-eye distance (issue 17's bar: <= 1%);
- per-photo time of the whole landmarker.
ONNX Runtime falls back silently to the next provider when one cannot start (missing libnvinfer, no
GPU), so each session's provider is read back and a fallback is reported as such, never timed as the
provider asked for. Nothing here needs a GPU to import; on a CPU machine cuda/tensorrt are reported
skipped with the reason."""

from __future__ import annotations

import ctypes
import glob
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from aucues.errors import AucuesError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
PARITY_BAR = 0.01  # mean 68-point distance / outer-eye distance (lm36-lm45), issue 17

Progress = Callable[[str], None]


def _preload_gpu_libraries() -> None:
    """CUDA/cuDNN from the nvidia-* wheels (ORT >= 1.21 does it) and TensorRT from the tensorrt wheel's
    tensorrt_libs folder (ORT's TensorRT provider dlopens libnvinfer.so.10 by name; a pip install puts
    it where the loader does not look)."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - absent CUDA wheels: the provider check reports it
            pass
    try:
        import tensorrt_libs  # noqa: F401 - the tensorrt wheel's shared libraries
    except ImportError:
        return
    folder = Path(tensorrt_libs.__file__).parent
    for lib in sorted(glob.glob(str(folder / "libnvinfer*.so*")) + glob.glob(str(folder / "libnvonnxparser*.so*"))):
        try:
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue


def _check_kind(kind: str) -> None:
    if kind not in PROVIDERS:
        raise AucuesError(f"unknown provider '{kind}'; choose from {', '.join(PROVIDERS)}")


def provider_lists(kind: str, max_batch: int, cache: Path) -> dict[str, list]:
    """Per landmark network, ONNX Runtime's provider list for `kind` (cpu, cuda, tensorrt). TensorRT gets
    an FP16 engine with a batch profile 1..max_batch (one engine, no rebuild per batch size), cached."""
    from aucues.onnx_landmarks.models import IO

    _check_kind(kind)
    if kind == "tensorrt":
        Path(cache).mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (in_name, _outs, (h, w, c), _shapes) in IO.items():
        if kind == "cpu":
            out[name] = ["CPUExecutionProvider"]
        elif kind == "cuda":
            out[name] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            shape = lambda b: f"{in_name}:{b}x{h}x{w}x{c}"  # noqa: E731
            trt = {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                   "trt_profile_min_shapes": shape(1), "trt_profile_opt_shapes": shape(min(8, max_batch)),
                   "trt_profile_max_shapes": shape(max_batch)}
            out[name] = [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider", "CPUExecutionProvider"]
    return out


def provider_available(kind: str) -> tuple[bool, str]:
    import onnxruntime as ort

    if kind != "cpu":
        _preload_gpu_libraries()
    have = ort.get_available_providers()
    if PROVIDERS[kind] not in have:
        return False, f"{PROVIDERS[kind]} is not in this onnxruntime ({', '.join(have)}); install the gpu extra"
    return True, ""


class _Recording:
    """A runner that keeps the first real batch each network was given (for the output parity)."""

    def __init__(self, runner):
        self.runner, self.seen = runner, {}

    def __call__(self, model: str, x: np.ndarray):
        self.seen.setdefault(model, x.copy())
        return self.runner(model, x)


def face_parity(ref: list, got: list) -> dict:
    """Same faces and how close: each reference face is matched to the nearest face of `got` by mean
    68-point distance / its outer-eye span (lm36-lm45); the faces are the same when the counts agree
    and no two reference faces match one. matches: (ref index, got index, distance) per reference face;
    mean_dist_rel: the worst matched distance (None when the faces differ)."""
    matches = []
    for i, r in enumerate(ref):
        iod = float(np.linalg.norm(r.points[36] - r.points[45])) or 1.0
        d = [float(np.linalg.norm(r.points - g.points, axis=1).mean()) / iod for g in got]
        if d:
            j = int(np.argmin(d))
            matches.append((i, j, round(d[j], 6)))
    same = len(ref) == len(got) and len({j for _, j, _ in matches}) == len(matches)
    return {"faces_ref": len(ref), "faces": len(got), "same_faces": same, "matches": matches,
            "mean_dist_rel": round(max((m[2] for m in matches), default=0.0), 5) if same else None}


def _latency(runner, model: str, batch: int, runs: int) -> float:
    from aucues.onnx_landmarks.models import IO

    h, w, c = IO[model][2]
    lo = -1.0 if model.startswith("face_detection") else 0.0  # detectors take [-1, 1], the mesh [0, 1]
    x = np.random.default_rng(0).uniform(lo, 1.0, (batch, h, w, c)).astype(np.float32)
    runner(model, x)  # first call: allocations (and, on TensorRT, the engine build or cache load)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner(model, x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    n = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / n) if n > 0 else float(np.array_equal(a, b))


def run_landmark_device_bench(providers: tuple[str, ...] = ("cpu", "cuda", "tensorrt"),
                              batches: tuple[int, ...] = (1, 8, 64), runs: int = 20, images=None,
                              cache: str | Path | None = None, progress: Progress | None = None) -> dict:
    """The JSON-able payload (see the module doc)."""
    from aucues.assets import available_photos
    from aucues.io import read_image
    from aucues.onnx_landmarks.landmarker import OnnxLandmarker, OrtRunner

    step = progress or (lambda _m: None)
    if runs < 1 or not batches or min(batches) < 1:
        raise AucuesError("runs and batch sizes must be >= 1")
    if not providers:
        raise AucuesError(f"no provider given; choose from {', '.join(PROVIDERS)}")
    for k in providers:  # all of them before any work
        _check_kind(k)
    paths = [Path(p) for p in (images or available_photos())]
    if not paths:
        raise AucuesError("no images given and no sample photos gathered; run `make setup` or pass IMAGES")
    photos = {p.name: read_image(p) for p in paths}
    cache = Path(cache) if cache else Path(os.environ.get("AUCUES_TRT_CACHE", "runs/trt_cache/landmarks"))
    max_batch = max(batches)

    step("reference: ONNX Runtime on the CPU")
    ref_rec = _Recording(OrtRunner())
    ref_lm = OnnxLandmarker(runner=ref_rec)
    reference = {n: ref_lm.detect(img) for n, img in photos.items()}
    out = {"benchmark": "landmarks", "providers": [], "latency": [], "outputs": [], "landmarks": [],
           "batches": list(batches), "runs": runs, "images": [str(p) for p in paths], "parity_bar": PARITY_BAR}
    for kind in providers:
        ok, why = provider_available(kind)
        if not ok:
            out["providers"].append({"provider": kind, "status": f"skipped: {why}"})
            continue
        step(f"{kind}: starting the sessions (TensorRT builds its engines here: a minute or more)")
        try:
            runner = OrtRunner(providers=provider_lists(kind, max_batch, cache))
        except AucuesError as e:
            out["providers"].append({"provider": kind, "status": f"failed: {e}"})
            continue
        used = runner.providers_used
        fell_back = sorted(m for m, p in used.items() if p != PROVIDERS[kind])
        out["providers"].append({"provider": kind, "used": used, "sessions": ", ".join(sorted(set(used.values()))),
                                 "status": (f"fell back to {', '.join(sorted(set(used[m] for m in fell_back)))} "
                                            f"for {', '.join(fell_back)}: not timed") if fell_back else "ok"})
        if fell_back:
            continue  # timing a fallback as `kind` would be a wrong number
        for model in used:
            for b in batches:
                step(f"{kind}: {model} at batch {b}")
                ms = _latency(runner, model, b, runs)
                out["latency"].append({"provider": kind, "model": model, "batch": b, "p50_ms": round(ms, 3),
                                       "per_image_ms": round(ms / b, 4)})
            x = ref_rec.seen.get(model)
            if x is not None:
                ref, got = ref_rec.runner(model, x), runner(model, x)
                out["outputs"].append({"provider": kind, "model": model, "batch": int(x.shape[0]),
                                       "max_abs": float(max(np.abs(r - g).max() for r, g in zip(ref, got))),
                                       "cosine": round(min(_cosine(r, g) for r, g in zip(ref, got)), 6)})
        lm = OnnxLandmarker(runner=runner)
        for name, img in photos.items():
            step(f"{kind}: landmarks of {name}")
            faces = lm.detect(img)
            repeats = max(1, runs // 4)
            t0 = time.perf_counter()
            for _ in range(repeats):
                lm.detect(img)
            ms = (time.perf_counter() - t0) * 1000.0 / repeats
            row = {"provider": kind, "image": name, **face_parity(reference[name], faces),
                   "ms_per_image": round(ms, 2)}
            row["ok"] = bool(row["same_faces"] and row["mean_dist_rel"] <= PARITY_BAR)  # same faces: a distance
            out["landmarks"].append(row)
        runner.close()
    out["parity_ok"] = bool(out["landmarks"]) and all(r["ok"] for r in out["landmarks"])
    return out


def write_landmark_device_results(payload: dict, out_dir: str | Path) -> dict[str, str]:
    from aucues.benchmark import line_plot, markdown_table, write_results

    md = "# aucues bench landmarks\n\nThe ONNX landmark networks per ONNX Runtime provider; parity against ONNX " \
         f"Runtime on the CPU (bar: mean 68-point distance <= {PARITY_BAR:.0%} of the outer-eye distance, " \
         "same faces).\n\n"
    md += markdown_table(payload["providers"], ["provider", "status", "sessions"])
    if payload["latency"]:
        md += "\n## Latency per network (median)\n\n"
        md += markdown_table(payload["latency"], ["provider", "model", "batch", "p50_ms", "per_image_ms"])
    if payload["outputs"]:
        md += "\n## Outputs vs the CPU (the landmarker's real batches)\n\n"
        md += markdown_table(payload["outputs"], ["provider", "model", "batch", "max_abs", "cosine"])
    if payload["landmarks"]:
        md += "\n## Landmarks vs the CPU, photo by photo\n\n"
        md += markdown_table(payload["landmarks"], ["provider", "image", "faces_ref", "faces", "same_faces",
                                                    "mean_dist_rel", "ok", "ms_per_image"])
        md += f"\nparity: **{'met' if payload['parity_ok'] else 'NOT met'}**\n"
    paths = write_results(out_dir, "landmarks", payload, md)
    if payload["latency"]:  # what batching buys per image, network by network and provider by provider
        series: dict[str, tuple[list, list]] = {}
        for r in payload["latency"]:
            xs, ys = series.setdefault(f"{r['provider']} {r['model'].replace('face_', '')}", ([], []))
            xs.append(r["batch"])
            ys.append(r["per_image_ms"])
        plot = Path(out_dir) / "landmarks_latency.png"
        line_plot(plot, series, "batch", "ms per image", "Landmark networks: time per image vs batch", logx=True)
        paths["latency_plot"] = str(plot)
    return paths
