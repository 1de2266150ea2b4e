"""What is installed and usable here (`aucues doctor`): torch and CUDA, ONNX Runtime providers,
TensorRT, the tritonserver binary, MediaPipe's face models. Every probe is lazy and never raises."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _version(mod: str, dist: str | None = None) -> str | None:
    try:
        m = importlib.import_module(mod)
    except Exception:  # noqa: BLE001 - a broken install is a finding, not a crash
        return None
    v = getattr(m, "__version__", None)
    if v is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version(dist or mod)
        except PackageNotFoundError:
            v = "unknown"
    return v


def _check_numpy() -> Check:
    v = _version("numpy")
    if v is None:
        return Check("numpy", False, "not installed")
    ok = int(v.split(".")[0]) < 2
    return Check("numpy", ok, f"{v}" + ("" if ok else " (the Triton Python backend needs numpy<2)"))


def _check_torch() -> list[Check]:
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        return [Check("torch", False, f"not importable: {e}")]
    out = [Check("torch", True, f"{torch.__version__}, {torch.get_num_threads()} threads")]
    tv = _version("torchvision")
    out.append(Check("torchvision", tv is not None, tv or "not installed"))
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        out.append(Check("cuda", True, f"{torch.version.cuda}: {names}", required=False))
    else:
        out.append(Check("cuda", False, "no CUDA device (CPU only)", required=False))
    return out


def _check_onnx() -> list[Check]:
    out = []
    for mod in ("onnx", "onnxscript", "onnxslim"):
        v = _version(mod)
        out.append(Check(mod, v is not None, v or "not installed"))
    try:
        import onnxruntime as ort

        prov = ort.get_available_providers()
        out.append(Check("onnxruntime", True, f"{ort.__version__}; providers: {', '.join(prov)}"))
        out.append(Check("onnxruntime CUDA/TensorRT EP", any(p in prov for p in ("CUDAExecutionProvider",
                   "TensorrtExecutionProvider")), "available" if "CUDAExecutionProvider" in prov else
                   "not available (pip install 'aucues[gpu]' on a GPU host)", required=False))
    except Exception as e:  # noqa: BLE001
        out.append(Check("onnxruntime", False, f"not importable: {e}"))
    return out


def _check_tensorrt() -> Check:
    v = _version("tensorrt")
    return Check("tensorrt", v is not None, v or "not installed (pip install 'aucues[gpu]' on a GPU host)",
                 required=False)


def tritonserver_binary() -> Path | None:
    """The tritonserver shipped inside the nvidia-pytriton wheel, if installed."""
    try:
        spec = importlib.util.find_spec("pytriton")
    except Exception:  # noqa: BLE001
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "tritonserver" / "bin" / "tritonserver"
    return p if p.exists() else None


def _check_triton() -> list[Check]:
    out = []
    binary = tritonserver_binary()
    if binary is None:
        out.append(Check("tritonserver", False, "binary not found (pip install nvidia-pytriton==0.7.0)"))
    else:
        stub = binary.parent.parent / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
        ok = os.access(binary, os.X_OK) and (stub / "triton_python_backend_stub").exists()
        out.append(Check("tritonserver", ok, f"{binary}" + ("" if ok else " (no python stub for this Python)")))
    v = _version("tritonclient")
    out.append(Check("tritonclient", v is not None, v or "not installed"))
    return out


def _check_mediapipe() -> Check:
    try:
        import mediapipe as mp
    except Exception as e:  # noqa: BLE001
        return Check("mediapipe", False, f"not importable: {e}")
    root = Path(mp.__file__).parent / "modules"
    need = ("face_detection/face_detection_full_range_sparse.tflite", "face_landmark/face_landmark.tflite")
    missing = [n for n in need if not (root / n).exists()]
    if missing:
        return Check("mediapipe", False, f"{mp.__version__}: models missing ({', '.join(missing)}); use mediapipe==0.10.21")
    return Check("mediapipe", True, f"{mp.__version__}: face detection (full range) and face mesh models present")


def collect() -> dict:
    checks: list[Check] = [_check_numpy()]
    checks += _check_torch()
    checks += _check_onnx()
    checks.append(_check_tensorrt())
    checks += _check_triton()
    checks.append(_check_mediapipe())
    cv = _version("cv2")
    checks.append(Check("opencv", cv is not None, cv or "not installed"))
    from aucues import __version__

    return {
        "aucues": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "checks": [c.to_dict() for c in checks],
        "ok": all(c.ok for c in checks if c.required),
    }
