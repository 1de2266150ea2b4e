"""The record of one export: what was written, how it was checked, how long it took.
Saved beside the model as `<name>.report.json` (atomically)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from aucues.io import atomic_write_json


def report_path(model_path: str | Path) -> Path:
    """model.onnx -> model.report.json; other formats keep their suffix (model.plan ->
    model.plan.report.json) so an engine's report never overwrites its ONNX's."""
    p = Path(model_path)
    if p.suffix.lower() == ".onnx":
        return p.with_name(p.stem + ".report.json")
    return p.with_name(p.name + ".report.json")


@dataclass
class ExportReport:
    path: str
    format: str = "onnx"
    exporter: str = ""
    opset: int = 0
    outputs: list[str] = field(default_factory=list)
    shapes: dict[str, list] = field(default_factory=dict)     # output -> symbolic shape ("batch", ...)
    verified: bool = False
    failures: list[str] = field(default_factory=list)          # why verification failed, one line each
    checker: str = ""                                           # "ok" or onnx.checker's message
    tolerances: dict = field(default_factory=dict)
    batch_sizes: list[int] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)            # per output x input kind x batch
    timings_s: dict[str, float] = field(default_factory=dict)
    file_size_bytes: int = 0
    simplified: bool = False
    fp16: bool = False
    int8: bool = False
    quantization: dict = field(default_factory=dict)            # int8 only: what was quantized, agreement
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verified

    @property
    def report_file(self) -> Path:
        return report_path(self.path)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path | None = None) -> Path:
        p = Path(path) if path else self.report_file
        atomic_write_json(p, self.to_dict())
        return p

    def summary(self) -> str:
        """One line for the CLI."""
        state = "verified" if self.verified else "NOT verified"
        size = self.file_size_bytes / 1e6
        total = self.timings_s.get("total", 0.0)
        worst = ""
        if self.int8 and self.quantization.get("top1_agreement") is not None:
            cams = [e for e in self.errors if "limit_cosine" in e]
            low = min(cams, key=lambda e: e["cosine_min"]) if cams else None
            worst = f", int8: top-1 agreement {self.quantization['top1_agreement']:.1%} with FP32" + (
                f", worst {low['output']} cosine {low['cosine_min']:.4f}" if low else "")
        elif self.errors and all("limit" in e for e in self.errors):
            w = max(self.errors, key=lambda e: e["max_abs"] / max(e["limit"], 1e-30))
            worst = f", worst {w['output']} err {w['max_abs']:.1e} (limit {w['limit']:.1e})"
        return f"{self.path}: {size:.1f} MB, {len(self.outputs)} outputs, {state}{worst}, {total:.1f} s"
