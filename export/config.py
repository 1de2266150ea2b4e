"""Typed export settings: dataclass defaults <- YAML/CLI flags (the CLI fills them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from aucues.errors import AucuesError
from aucues.preprocessing import LAYERS

EXPORTERS = ("dynamo", "torchscript")
OUTPUT_MODES = ("all", "logits")
ALL_LAYERS = LAYERS
MIN_OPSET = 18
# The batch the graph is traced with. It must be >= 2: a traced batch of 1 gets specialised into a
# fixed dimension (ENVIRONMENT.md). Verification then runs batch 1 and `batch`, both unlike it.
EXAMPLE_BATCH = 2


@dataclass(frozen=True)
class Tolerances:
    """Parity limits of ONNX Runtime against PyTorch. An output passes when
    max|ort - torch| <= atol * max(1, max|torch|)   (absolute for outputs of magnitude <= 1, relative
    to the output's peak above that: CAMs and deep attentions of random weights reach ~50) and
    cosine(ort, torch) >= min_cosine (flattened, whole batch). The cosine is not checked when
    max|torch| <= noise_floor: such an output is float rounding noise (e.g. ViT's channel mean right
    after a LayerNorm is ~1e-8), its direction meaningless; the absolute limit still applies."""

    atol: float = 1e-4
    min_cosine: float = 0.9999
    noise_floor: float = 1e-6

    def to_dict(self) -> dict:
        return asdict(self)


FP32_TOLERANCES = Tolerances(atol=1e-4, min_cosine=0.9999)
# fp16 weights and activations: ~3 decimal digits; measured ~2e-4 relative on resnet18.
FP16_TOLERANCES = Tolerances(atol=1e-2, min_cosine=0.999)


@dataclass
class ExportConfig:
    exporter: str = "dynamo"          # measured reliable for dilated ResNet50 (docs/export.md)
    opset: int = 18
    outputs: str = "all"              # "all": logits, probabilities, cam, attention_<k>; "logits": logits only
    layers: tuple[int, ...] = ALL_LAYERS  # attention layers exported (1..5, docs/method.md §5)
    simplify: bool = True             # onnxslim, verified after
    fp16: bool = False                # weights/activations fp16, input/outputs stay float32
    batch: int = 4                    # N of the batch-N verification (batch 1 is always checked too)
    verify: bool = True
    tolerances: Tolerances | None = None  # None: FP32_TOLERANCES or FP16_TOLERANCES
    write_report: bool = True         # <name>.report.json beside the model
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise AucuesError(f"unknown exporter '{self.exporter}'; choose one of: {', '.join(EXPORTERS)}")
        if self.outputs not in OUTPUT_MODES:
            raise AucuesError(f"unknown outputs '{self.outputs}'; choose one of: {', '.join(OUTPUT_MODES)}")
        if int(self.opset) < MIN_OPSET:
            raise AucuesError(f"opset must be >= {MIN_OPSET}, got {self.opset}")
        layers = tuple(int(k) for k in self.layers)
        bad = [k for k in layers if k not in ALL_LAYERS]
        if bad or len(set(layers)) != len(layers):
            raise AucuesError(f"layers must be distinct values among 1..5, got {list(self.layers)}")
        self.layers = tuple(sorted(layers))
        if int(self.batch) < 1:
            raise AucuesError(f"batch must be >= 1, got {self.batch}")

    @property
    def resolved_tolerances(self) -> Tolerances:
        if self.tolerances is not None:
            return self.tolerances
        return FP16_TOLERANCES if self.fp16 else FP32_TOLERANCES

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["tolerances"] = self.resolved_tolerances.to_dict()
        return d


def parse_layers(text: str) -> tuple[int, ...]:
    """'1,2,5' -> (1, 2, 5); '' or 'none' -> () (no attention outputs)."""
    text = (text or "").strip().lower()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise AucuesError(f"--layers takes comma-separated layer numbers 1..5, got '{text}'") from None
