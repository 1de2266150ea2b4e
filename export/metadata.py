"""The `aucues` metadata inside an exported ONNX file (its `metadata_props`).

Key `aucues` holds one JSON object (format "aucues-onnx/1"); the Triton side reads the same key,
so the fields below are a contract (docs/export.md):

    format, aucues_version, preprocess (PreprocessConfig.to_dict(), attention_layers = exported
    layers), model_config, outputs [names], layers {"k": [h, w]}, cam_size [h, w] | null, has_cam (false:
    the model has no CAM, APViT; absent in older files = true), attention_layer (the layer the model's
    architecture aligns: 5, APViT 1; absent = 5),
    au {...} | null, checkpoint_sha256 | null, exporter, opset, fp16, simplified, verified,
    int8 (QDQ-quantized; then `verified` means: against the FP32 graph), quantization {...} | null

A few flat keys repeat what a person looks for first: class_names (comma-separated), image_size,
aucues_version, verified.
"""

from __future__ import annotations

import json
from pathlib import Path

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig

METADATA_KEY = "aucues"
METADATA_FORMAT = "aucues-onnx/1"
FLAT_KEYS = ("class_names", "image_size", "aucues_version", "verified", "int8")


def build_metadata(*, preprocess: PreprocessConfig, model_config: dict, outputs: list[str],
                   layers: dict[int, tuple[int, int]], cam_size: tuple[int, int] | None,
                   au: dict | None, checkpoint_sha256: str | None, exporter: str, opset: int,
                   fp16: bool = False, simplified: bool = False, verified: bool = False,
                   int8: bool = False, quantization: dict | None = None, has_cam: bool = True,
                   attention_layer: int = 5) -> dict:
    import aucues

    return {
        "format": METADATA_FORMAT,
        "aucues_version": aucues.__version__,
        "preprocess": preprocess.to_dict(),
        "model_config": model_config,
        "outputs": list(outputs),
        "layers": {str(k): [int(v[0]), int(v[1])] for k, v in sorted(layers.items())},
        "cam_size": [int(cam_size[0]), int(cam_size[1])] if cam_size else None,
        "has_cam": bool(has_cam),
        "attention_layer": int(attention_layer),
        "au": au,
        "checkpoint_sha256": checkpoint_sha256,
        "exporter": exporter,
        "opset": int(opset),
        "fp16": bool(fp16),
        "int8": bool(int8),
        "quantization": quantization,
        "simplified": bool(simplified),
        "verified": bool(verified),
    }


def set_metadata(model, meta: dict) -> None:
    """Write `meta` into an onnx.ModelProto's metadata_props (replacing earlier aucues keys)."""
    keep = [p for p in model.metadata_props if p.key != METADATA_KEY and p.key not in FLAT_KEYS]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    pre = meta.get("preprocess", {})
    props = {
        METADATA_KEY: json.dumps(meta, sort_keys=True, default=_jsonable),
        "class_names": ",".join(pre.get("class_names", [])),
        "image_size": str(pre.get("image_size", "")),
        "aucues_version": str(meta.get("aucues_version", "")),
        "verified": "true" if meta.get("verified") else "false",
        "int8": "true" if meta.get("int8") else "false",
    }
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


def _jsonable(o):
    # numpy scalars/arrays and tuples from checkpoint extras
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def metadata_from_model(model, what: str = "model") -> dict:
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise AucuesError(f"{what}: no '{METADATA_KEY}' metadata (not exported by `aucues export`)")
    try:
        meta = json.loads(props[METADATA_KEY])
    except ValueError as e:
        raise AucuesError(f"{what}: '{METADATA_KEY}' metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
        raise AucuesError(f"{what}: unsupported aucues metadata format {meta.get('format') if isinstance(meta, dict) else None!r}"
                          f" (expected {METADATA_FORMAT})")
    return meta


def load_onnx(path: str | Path, load_weights: bool = False):
    """onnx.load with one-line errors for missing/corrupt files."""
    import onnx

    p = Path(path)
    if not p.exists():
        raise AucuesError(f"{p}: no such file")
    if p.is_dir():
        raise AucuesError(f"{p}: is a directory, expected an ONNX file")
    try:
        return onnx.load(str(p), load_external_data=load_weights)
    except Exception as e:  # protobuf DecodeError and friends
        raise AucuesError(f"{p}: not a readable ONNX model ({type(e).__name__})") from None


def read_metadata(onnx_path: str | Path) -> dict:
    """The `aucues` JSON object of an exported ONNX file."""
    return metadata_from_model(load_onnx(onnx_path), str(onnx_path))


def preprocess_from_onnx(onnx_path: str | Path) -> PreprocessConfig:
    """The PreprocessConfig recorded at export (image size, normalisation, classes, layers)."""
    meta = read_metadata(onnx_path)
    try:
        return PreprocessConfig.from_dict(meta["preprocess"])
    except (KeyError, TypeError) as e:
        raise AucuesError(f"{onnx_path}: aucues metadata has no valid preprocess ({e})") from None
