"""The one source of truth for preprocessing and labels (timm's pretrained cfg).

Saved in checkpoints, written into ONNX metadata, read by the Triton models and by config.pbtxt
generation; never re-typed elsewhere."""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from aucues.defaults import DEFAULT_IMAGE_SIZE, LAYERS  # noqa: F401 (re-exported)
from aucues.align import LEGACY_TEMPLATE, REFERENCE_TEMPLATE, AlignTemplate
from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
# A model input side above this is a corrupt or hostile config, not a face model: one 2048 px RGB
# float input is already 50 MB, and 20000 px asked for ~5 GB per image before failing.
MAX_IMAGE_SIZE = 2048
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessConfig:
    """How a face becomes the model's input, and what the outputs mean."""

    image_size: int = DEFAULT_IMAGE_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: tuple[str, ...] = CLASS_NAMES
    # layers (1..5, docs/method.md §5 numbering) whose attention the deployed model returns
    attention_layers: tuple[int, ...] = LAYERS
    # AU codebook variant used for maps and evidence ("paper" or "reference")
    codebook: str = "paper"
    interpolation: str = "bilinear"
    extra: dict = field(default_factory=dict)
    # model input channels: 3 = RGB, 1 = grayscale (RGB -> gray with cv2's RGB2GRAY weights, then
    # mean[0]/std[0]); older checkpoints without the key are RGB
    channels: int = 3
    # face framing: "five_point" (aligned on landmarks) or "box" (a loose FER2013-style face box)
    crop: str = "five_point"
    # the five_point crop's alignment template (aucues.align, docs/fidelity.md): five (x, y) points
    # in five_points order for a crop of side align_template_size, scaled to image_size, and whether
    # the fit levels the eyes. Default: the reference's (ArcFace 112 template, plain least squares).
    # Configs written before these keys existed get LEGACY_TEMPLATE (from_dict), the crop they were
    # trained on.
    align_template: tuple[tuple[float, float], ...] = REFERENCE_TEMPLATE.points
    align_template_size: float = REFERENCE_TEMPLATE.size
    align_level_eyes: bool = REFERENCE_TEMPLATE.level_eyes

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, numbers.Integral):
            raise AucuesError(f"image_size must be an integer, got {self.image_size!r}")
        if not 16 <= self.image_size <= MAX_IMAGE_SIZE:
            raise AucuesError(f"image_size must be between 16 and {MAX_IMAGE_SIZE}, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise AucuesError("mean and std need three values each, std > 0")
        if not self.class_names:
            raise AucuesError("class_names is empty")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise AucuesError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        if self.crop not in ("five_point", "box"):
            raise AucuesError(f"crop must be 'five_point' or 'box', got {self.crop!r}")
        if not isinstance(self.align_level_eyes, bool):
            raise AucuesError(f"align_level_eyes must be true or false, got {self.align_level_eyes!r}")
        self.template  # validates the points and size (AucuesError)

    @property
    def template(self) -> AlignTemplate:
        """The alignment template of the five_point crop (aucues.align.align_face's `template`)."""
        return AlignTemplate(self.align_template, self.align_template_size, self.align_level_eyes)

    def with_template(self, template: AlignTemplate) -> "PreprocessConfig":
        """A copy aligned with `template`."""
        from dataclasses import replace

        return replace(self, align_template=tuple(tuple(map(float, p)) for p in template.points),
                       align_template_size=float(template.size), align_level_eyes=bool(template.level_eyes))

    def template_points(self, size: int | None = None) -> np.ndarray:
        """(5, 2) float64 template points in a crop of side `size` (default image_size)."""
        return self.template.scaled(self.image_size if size is None else size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 (already image_size) -> float32 CxHxW normalised (C = channels)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise AucuesError(f"expected an RGB image HxWx3, got shape {image.shape}")
        if self.channels == 1:
            import cv2

            g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
            return np.ascontiguousarray(((g - np.float32(self.mean[0])) / np.float32(self.std[0]))[None])
        x = image.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def denormalize(self, chw: np.ndarray) -> np.ndarray:
        """float32 CxHxW normalised -> RGB uint8 HxWx3 (grayscale repeated when channels == 1)."""
        if self.channels == 1:
            g = chw[0] * np.float32(self.std[0]) + np.float32(self.mean[0])
            g = np.clip(g * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.repeat(g[:, :, None], 3, axis=2)
        x = chw.transpose(1, 2, 0) * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("mean", "std", "class_names", "attention_layers"):
            d[k] = list(d[k])
        d["align_template"] = [[float(x), float(y)] for x, y in self.align_template]
        d["align_template_size"] = float(self.align_template_size)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise AucuesError(f"unknown preprocessing keys: {', '.join(sorted(unknown))}")
        kw = dict(d)
        for k in ("mean", "std", "class_names", "attention_layers"):
            if k in kw:
                kw[k] = tuple(kw[k])
        if not any(k in kw for k in ("align_template", "align_template_size", "align_level_eyes")):
            # written before the template was a field: the crop those models were trained on
            kw.update(align_template=LEGACY_TEMPLATE.points, align_template_size=LEGACY_TEMPLATE.size,
                      align_level_eyes=LEGACY_TEMPLATE.level_eyes)
        if "align_template" in kw:
            try:
                kw["align_template"] = tuple((float(x), float(y)) for x, y in kw["align_template"])
            except (TypeError, ValueError):
                raise AucuesError(f"align_template must be 5 (x, y) pairs, got {kw['align_template']!r}") from None
        if isinstance(kw.get("align_template_size"), int) and not isinstance(kw["align_template_size"], bool):
            kw["align_template_size"] = float(kw["align_template_size"])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessConfig":
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError) as e:
            raise AucuesError(f"invalid preprocessing config: {e}") from None
