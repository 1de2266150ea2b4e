"""Verification of an exported graph: onnx.checker (full check), then ONNX Runtime (CPU) against the
PyTorch reference on random and real face inputs at batch 1 and batch N.

Error measure per output (flattened over the batch): max_abs = max|ort - ref|, limit =
atol * max(1, max|ref|) (absolute below magnitude 1, relative to the peak above), cosine of the two
vectors. Pass: max_abs <= limit and cosine >= min_cosine (an all-zero pair counts as cosine 1; the
cosine is skipped for outputs whose peak is below tol.noise_floor, i.e. rounding noise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from aucues.preprocessing import PreprocessConfig
from aucues.export.config import Tolerances

REAL_PHOTO = "Tom_Hanks_54745.png"


@dataclass
class VerifyResult:
    ok: bool = False
    checker: str = ""
    failures: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    input_kinds: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_model(path: str | Path) -> str:
    """'ok' or the checker's message (first line). Checks by path so models > 2 GB work too."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
        return "ok"
    except Exception as e:  # ValidationError, InferenceError, ...
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def _real_images(size: int, n: int) -> tuple[list[np.ndarray], str]:
    """n RGB uint8 faces of size x size: the aligned photo, its mirror, brightness variants.
    Falls back to a synthetic smooth image when set-up gathered no photo."""
    import cv2

    from aucues.errors import AucuesError

    try:
        from aucues.assets import photo
        from aucues.io import read_image

        base = read_image(photo(REAL_PHOTO))
        source = REAL_PHOTO
    except AucuesError:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        base = (np.stack([yy, xx, 1 - (yy + xx) / 2], -1) * 255).astype(np.uint8)
        source = "synthetic gradient (photo not gathered)"
    interp = cv2.INTER_AREA if base.shape[0] > size else cv2.INTER_LINEAR
    base = cv2.resize(base, (size, size), interpolation=interp)
    out = []
    for i in range(n):
        img = base[:, ::-1] if i % 2 else base
        gain = 1.0 + 0.15 * (i // 2) * (-1) ** (i // 2)
        out.append(np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    return out, source


def make_inputs(preprocess: PreprocessConfig, batch: int, seed: int = 0) -> tuple[dict, list[str]]:
    """{(kind, n): float32 (n,C,H,W), C = preprocess.channels} for kind in random/real and n in {1, batch}."""
    rng = np.random.default_rng(seed)
    size = preprocess.image_size
    sizes = sorted({1, int(batch)})
    imgs, source = _real_images(size, max(sizes))
    real = np.stack([preprocess.normalize(im) for im in imgs])
    inputs = {}
    for n in sizes:
        inputs[("random", n)] = rng.standard_normal((n, preprocess.channels, size, size)).astype(np.float32)
        inputs[("real", n)] = np.ascontiguousarray(real[:n])
    return inputs, [f"real input: {source}"]


def compare(name: str, ref: np.ndarray, got: np.ndarray, tol: Tolerances) -> dict:
    ref64, got64 = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    if ref.shape != got.shape:
        return {"output": name, "shape": list(got.shape), "expected_shape": list(ref.shape),
                "max_abs": float("inf"), "limit": 0.0, "peak": 0.0, "cosine": 0.0, "ok": False}
    if not np.isfinite(got64).all():
        return {"output": name, "shape": list(got.shape), "max_abs": float("inf"), "limit": 0.0,
                "peak": float(np.abs(ref64).max(initial=0)), "cosine": 0.0, "ok": False, "nonfinite": True}
    max_abs = float(np.abs(ref64 - got64).max(initial=0.0))
    peak = float(np.abs(ref64).max(initial=0.0))
    limit = tol.atol * max(1.0, peak)
    na, nb = np.linalg.norm(ref64), np.linalg.norm(got64)
    cos = 1.0 if na == 0 and nb == 0 else float(ref64 @ got64 / max(na * nb, 1e-30))
    cos_ok = cos >= tol.min_cosine or peak <= tol.noise_floor
    return {"output": name, "shape": list(got.shape), "max_abs": max_abs, "limit": limit, "peak": peak,
            "cosine": cos, "ok": bool(max_abs <= limit and cos_ok)}


def ort_session(path: str | Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def verify_onnx(path: str | Path, reference: Callable[[np.ndarray], list[np.ndarray]],
                output_names: list[str], preprocess: PreprocessConfig, batch: int,
                tol: Tolerances, seed: int = 0) -> VerifyResult:
    """Run every check; never raises for a parity failure (the result says why)."""
    res = VerifyResult(batch_sizes=sorted({1, int(batch)}), input_kinds=["random", "real"])
    t = time.perf_counter()
    res.checker = check_model(path)
    res.timings_s["check"] = time.perf_counter() - t
    if res.checker != "ok":
        res.failures.append(f"onnx.checker: {res.checker}")
        return res
    t = time.perf_counter()
    try:
        sess = ort_session(path)
    except Exception as e:
        res.failures.append(f"onnxruntime cannot load the model: {str(e).strip().splitlines()[0]}")
        return res
    res.timings_s["ort_load"] = time.perf_counter() - t
    got_names = [o.name for o in sess.get_outputs()]
    if got_names != list(output_names):
        res.failures.append(f"outputs are {got_names}, expected {list(output_names)}")
        return res
    inputs, notes = make_inputs(preprocess, batch, seed)
    res.notes += notes
    t_ref = t_ort = 0.0
    for (kind, n), x in inputs.items():
        t = time.perf_counter()
        ref = reference(x)
        t_ref += time.perf_counter() - t
        t = time.perf_counter()
        try:
            got = sess.run(None, {"image": x})
        except Exception as e:
            res.failures.append(f"onnxruntime failed at batch {n} ({kind}): {str(e).strip().splitlines()[0]}")
            continue
        t_ort += time.perf_counter() - t
        for name, r, g in zip(output_names, ref, got):
            e = compare(name, np.asarray(r), np.asarray(g), tol)
            e.update(input=kind, batch=n)
            res.errors.append(e)
            if not e["ok"]:
                res.failures.append(f"{name} ({kind}, batch {n}): max_abs {e['max_abs']:.3g} > {e['limit']:.3g}"
                                    f" or cosine {e['cosine']:.6f} < {tol.min_cosine}")
    res.timings_s["torch_reference"] = t_ref
    res.timings_s["ort_run"] = t_ort
    res.ok = not res.failures
    return res
