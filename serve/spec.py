"""What the serving side needs to know about an exported model, read from its ONNX metadata.

The `aucues` metadata key (written by export) holds the PreprocessConfig, the attention layers with
their map sizes and the CAM size. Every shape, label and normalisation constant of the Triton
repository comes from here, so a repository always matches the model it serves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig

METADATA_KEY = "aucues"
# The layer whose attention the paper aligns with the AU maps (docs/method.md §5); the served
# `attention`, AU evidence and interpretability score use it (or the deepest exported layer).
ALIGNED_LAYER = 5
NUM_LANDMARKS = 68


@dataclass(frozen=True)
class ModelSpec:
    preprocess: PreprocessConfig
    layers: dict[int, tuple[int, int]]          # attention layer -> (h, w)
    cam_size: tuple[int, int] | None             # (h, w) of the `cam` output; None: the model has no CAM
    metadata: dict = field(default_factory=dict, compare=False)  # the full metadata, as read
    aligned_layer: int = ALIGNED_LAYER           # the layer the architecture aligns (metadata attention_layer)

    @property
    def has_cam(self) -> bool:
        """Written by export from the model (FERModel.has_cam; APViT has none): no `cam` output then,
        and the generated classifier, postprocess and ensemble configs carry none."""
        return self.cam_size is not None

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.preprocess.class_names

    @property
    def num_classes(self) -> int:
        return len(self.preprocess.class_names)

    @property
    def attention_layer(self) -> int:
        return self.aligned_layer if self.aligned_layer in self.layers else max(self.layers)

    @property
    def topk(self) -> int:
        return min(3, self.num_classes)

    def classifier_outputs(self) -> list[str]:
        return ["logits", "probabilities"] + (["cam"] if self.has_cam else []) \
            + [f"attention_{k}" for k in sorted(self.layers)]

    def to_dict(self) -> dict:
        """The compact form embedded in generated configs (parameter `aucues`)."""
        d = {
            "preprocess": self.preprocess.to_dict(),
            "layers": {str(k): list(v) for k, v in sorted(self.layers.items())},
            "cam_size": list(self.cam_size) if self.has_cam else None,
            "attention_layer": self.attention_layer,
        }
        if not self.has_cam:  # only then, so the configs of models with a CAM stay as they were
            d["has_cam"] = False
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_metadata(cls, meta: dict) -> "ModelSpec":
        """From the ONNX `aucues` metadata (or `to_dict()` output)."""
        if not isinstance(meta, dict) or "preprocess" not in meta:
            raise AucuesError("model metadata has no 'preprocess' entry; export the model with `aucues export`")
        pre = PreprocessConfig.from_dict(meta["preprocess"])
        try:
            layers = {int(k): (int(v[0]), int(v[1])) for k, v in (meta.get("layers") or {}).items()}
        except (TypeError, ValueError, IndexError):
            raise AucuesError(f"model metadata: malformed 'layers' {meta.get('layers')!r}") from None
        if not layers:
            raise AucuesError("model metadata lists no attention layers; the server needs at least one")
        aligned = meta.get("attention_layer", ALIGNED_LAYER)
        if isinstance(aligned, bool) or not isinstance(aligned, int):
            raise AucuesError(f"model metadata: malformed 'attention_layer' {aligned!r}")
        if meta.get("has_cam", True) is False:  # absent in files exported before it existed: they have one
            return cls(preprocess=pre, layers=layers, cam_size=None, metadata=dict(meta), aligned_layer=aligned)
        cam = meta.get("cam_size") or layers.get(ALIGNED_LAYER) or layers[max(layers)]
        try:
            cam_size = (int(cam[0]), int(cam[1]))
        except (TypeError, ValueError, IndexError):
            raise AucuesError(f"model metadata: malformed 'cam_size' {cam!r}") from None
        return cls(preprocess=pre, layers=layers, cam_size=cam_size, metadata=dict(meta), aligned_layer=aligned)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            return cls.from_metadata(json.loads(text))
        except ValueError as e:
            raise AucuesError(f"invalid aucues model metadata: {e}") from None


def read_onnx_metadata(path: str | Path) -> dict:
    """The `aucues` metadata dict of an exported ONNX file (weights are not loaded)."""
    p = Path(path)
    if not p.is_file():
        raise AucuesError(f"{p}: no such ONNX file")
    try:
        from aucues.export.metadata import read_metadata  # the exporter's own reader, when available
    except ImportError:
        read_metadata = None
    if read_metadata is not None:
        return read_metadata(p)
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several kinds
        raise AucuesError(f"{p}: not a readable ONNX model ({e.__class__.__name__})") from None
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                return json.loads(prop.value)
            except ValueError:
                raise AucuesError(f"{p}: metadata '{METADATA_KEY}' is not valid JSON") from None
    raise AucuesError(f"{p}: no '{METADATA_KEY}' metadata; export the model with `aucues export`")


def spec_from_onnx(path: str | Path) -> ModelSpec:
    return ModelSpec.from_metadata(read_onnx_metadata(path))
