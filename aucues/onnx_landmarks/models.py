"""The three ONNX landmark models, converted on demand from the TFLite files inside the pinned
mediapipe wheel and cached (never downloaded).

Cache: `<assets_dir>/onnx_landmarks/<name>-<hash>.onnx` (aucues.assets.assets_dir: `.assets/` in a
checkout, the user cache for a wheel install, $AUCUES_ASSETS to move it). The hash covers the TFLite
bytes and CONVERTER_VERSION, so a new mediapipe wheel or a converter fix makes new files instead of
reusing stale ones. Files are written atomically (temp file + rename), so concurrent first uses are safe.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aucues.errors import AucuesError

CONVERTER_VERSION = "2"

# name -> path inside the mediapipe package
TFLITE = {
    "face_detection_short_range": "modules/face_detection/face_detection_short_range.tflite",
    "face_detection_full_range": "modules/face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark": "modules/face_landmark/face_landmark.tflite",
}


# name -> (input name, output names, input shape HWC, output shapes without batch): the TFLite models'
# own tensor names, which the converted ONNX keeps (tests check both against the files).
IO = {
    "face_detection_short_range": ("input", ("regressors", "classificators"), (128, 128, 3), ((896, 16), (896, 1))),
    "face_detection_full_range": ("input_1", ("Identity", "Identity_1"), (192, 192, 3), ((2304, 16), (2304, 1))),
    "face_landmark": ("input_1", ("conv2d_21", "conv2d_31"), (192, 192, 3), ((1, 1, 1404), (1, 1, 1))),
}


def tflite_path(name: str) -> Path:
    try:
        import importlib.util

        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise AucuesError("mediapipe is not installed: the ONNX landmark models are converted from its "
                          "TFLite files; run `make setup`")
    p = Path(list(spec.submodule_search_locations)[0]) / TFLITE[name]
    if not p.is_file():
        raise AucuesError(f"{p} is missing from the mediapipe wheel (expected mediapipe==0.10.21)")
    return p


def cache_dir() -> Path:
    from aucues.assets import assets_dir

    return assets_dir() / "onnx_landmarks"


def onnx_path(name: str, cache: Path | None = None) -> Path:
    """The cached ONNX model for `name`, converted now when it is not there yet."""
    from aucues.io import atomic_write_bytes

    src = tflite_path(name).read_bytes()
    digest = hashlib.sha256(src + CONVERTER_VERSION.encode()).hexdigest()[:12]
    dest = Path(cache or cache_dir()) / f"{name}-{digest}.onnx"
    if dest.is_file():
        return dest
    from aucues.onnx_landmarks.convert import tflite_to_onnx

    model = tflite_to_onnx(src, producer=f"aucues tflite->onnx {CONVERTER_VERSION}")
    try:
        atomic_write_bytes(dest, model.SerializeToString())
    except OSError as e:
        raise AucuesError(f"cannot write the ONNX landmark model to {dest} ({e.strerror or e}); "
                          "set AUCUES_ASSETS to a writable folder") from None
    return dest


def ensure_all(cache: Path | None = None) -> dict[str, Path]:
    """Convert (if needed) all three models; the set-up step calls this."""
    return {name: onnx_path(name, cache) for name in TFLITE}


if __name__ == "__main__":  # python -m aucues.onnx_landmarks.models: convert at set-up time
    for n, p in ensure_all().items():
        print(f"{n}: {p}")
