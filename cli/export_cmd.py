"""`aucues export` (checkpoint -> verified ONNX) and `aucues engine` (ONNX -> TensorRT plan).
Thin: parse flags, merge with an optional YAML config, call export.export_onnx / build_engine.
Exit codes: 0 ok, 1 bad input or missing GPU/TensorRT (one line), 2 verification failed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

VERIFY_FAILED = 2


def _yaml(path: Optional[Path]) -> dict:
    from aucues.config_file import read_yaml_mapping

    return {} if path is None else read_yaml_mapping(path, "export config file")


def _merge(cls, yaml_values: dict, flags: dict):
    """dataclass defaults <- YAML <- flags given on the command line (None = not given)."""
    import dataclasses

    from aucues.config_file import check_known_keys, layered
    from aucues.errors import AucuesError

    check_known_keys(yaml_values, [f.name for f in dataclasses.fields(cls)], f"{cls.__name__} settings")
    values = layered({}, yaml_values, flags)
    if "tolerances" in values and isinstance(values["tolerances"], dict):
        from aucues.export.config import Tolerances

        values["tolerances"] = Tolerances(**values["tolerances"])
    try:
        return cls(**values)
    except TypeError as e:
        raise AucuesError(f"bad export settings: {e}") from None


def _one_line_errors(command):
    """User errors become one escaped line and exit 1 (messages hold brackets such as `aucues[gpu]`
    or `[7]` that rich would read as markup)."""
    import functools

    @functools.wraps(command)
    def run(*args, **kwargs):
        from rich.markup import escape

        from aucues.errors import AucuesError
        from aucues.cli.common import fail

        try:
            return command(*args, **kwargs)
        except AucuesError as e:
            fail(escape(str(e)), 1)
        except OSError as e:  # writing the output (permissions, full disk)
            fail(escape(f"cannot write {kwargs.get('out')}: {e.strerror or e}"), 1)

    return run


def _run_with_status(label: str, fn):
    from rich.markup import escape

    from aucues.cli.common import console

    with console.status(label) as status:
        return fn(lambda msg: status.update(f"{label}: {escape(msg)}"))


def _finish(report) -> None:
    from rich.markup import escape

    from aucues.cli.common import console, fail

    console.print(escape(report.summary()), highlight=False, soft_wrap=True)
    console.print(f"report: {escape(str(report.report_file))}", highlight=False, soft_wrap=True)
    if not report.config.get("verify", True):
        console.print("not verified (--no-verify): metadata says verified=false", highlight=False)
        return
    if not report.verified:
        for line in report.failures[:5]:
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        first = report.failures[0] if report.failures else "no check ran"
        fail(f"verification failed: {first}{more}; file marked unverified, see {report.report_file}", VERIFY_FAILED)


def export_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by `aucues train` (.pt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output ONNX file (.onnx); report beside it."),
    exporter: Optional[str] = typer.Option(None, help="dynamo (default) or torchscript."),
    opset: Optional[int] = typer.Option(None, help="ONNX opset (>= 18, default 18)."),
    outputs: Optional[str] = typer.Option(None, help="all (logits, probabilities, cam, attentions) or logits."),
    layers: Optional[str] = typer.Option(None, help="Attention layers to export, e.g. 1,2,3,4,5 (default) or 5."),
    simplify: Optional[bool] = typer.Option(None, "--simplify/--no-simplify", help="onnxslim (default on)."),
    fp16: Optional[bool] = typer.Option(None, "--fp16/--fp32", help="fp16 weights, float32 input/outputs."),
    batch: Optional[int] = typer.Option(None, help="Batch N of the batch-N verification (default 4)."),
    verify: Optional[bool] = typer.Option(None, "--verify/--no-verify", help="Parity check (default on)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of ExportConfig settings."),
    int8: bool = typer.Option(False, "--int8", help="QDQ INT8 for CPUs, calibrated on --calibration faces, "
                                                    "verified against the FP32 graph."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Folder of aligned faces (--int8)."),
    check_set: Optional[Path] = typer.Option(None, "--check-set", help="Separate folder of check faces (--int8; "
                                             "default: 20% of --calibration held out)."),
    calibration_method: Optional[str] = typer.Option(None, help="minmax (default), entropy or percentile (--int8)."),
    int8_activations: Optional[str] = typer.Option(None, help="--int8: uint8 (default; fastest in ONNX Runtime on "
                                                   "CPUs) or int8 (symmetric, for TensorRT engines)."),
    min_top1: Optional[float] = typer.Option(None, help="--int8: least top-1 agreement with FP32 (default 0.99)."),
    min_cosine: Optional[float] = typer.Option(None, help="--int8: least per-image cosine of cam and attentions "
                                               "vs FP32 (default 0.98)."),
) -> None:
    """Export a checkpoint to ONNX (dynamic batch, named outputs, aucues metadata) and verify it
    against PyTorch in ONNX Runtime (--int8: quantize it and verify against the FP32 graph); exit
    code 2 when verification fails."""
    from aucues.errors import AucuesError
    from aucues.export.config import ExportConfig, parse_layers
    from aucues.export.onnx_export import export_onnx

    flags = dict(exporter=exporter, opset=opset, outputs=outputs, simplify=simplify, fp16=fp16,
                 batch=batch, verify=verify, layers=parse_layers(layers) if layers is not None else None)
    yaml_values = _yaml(config)
    int8_yaml = yaml_values.pop("int8", None) or {}
    cfg = _merge(ExportConfig, yaml_values, flags)
    int8_flags = dict(calibration=str(calibration) if calibration else None, method=calibration_method,
                      check_set=str(check_set) if check_set else None, min_top1=min_top1, min_cosine=min_cosine,
                      activations=int8_activations)
    if not int8:
        if any(v is not None for v in int8_flags.values()):
            raise AucuesError("--calibration, --check-set, --calibration-method, --int8-activations, --min-top1 and "
                              "--min-cosine need --int8")
        report = _run_with_status(f"exporting {checkpoint.name}", lambda p: export_onnx(checkpoint, out, cfg, p))
    else:
        from aucues.export.quantize import Int8Config, export_int8

        if not isinstance(int8_yaml, dict):
            raise AucuesError("config key 'int8' must be a mapping of Int8Config settings")
        qcfg = _merge(Int8Config, int8_yaml, int8_flags)
        report = _run_with_status(f"exporting {checkpoint.name} as INT8",
                                  lambda p: export_int8(checkpoint, out, cfg, qcfg, p))
    _finish(report)


def engine_command(
    model: Path = typer.Argument(..., help="ONNX model written by `aucues export`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output TensorRT engine (.plan)."),
    fp16: Optional[bool] = typer.Option(None, "--fp16/--fp32", help="Allow fp16 kernels."),
    min_batch: Optional[int] = typer.Option(None, help="Optimisation profile: smallest batch (default 1)."),
    opt_batch: Optional[int] = typer.Option(None, help="Optimisation profile: batch tuned for (default 8)."),
    max_batch: Optional[int] = typer.Option(None, help="Optimisation profile: largest batch (default 32)."),
    workspace: Optional[float] = typer.Option(None, help="Builder workspace in GB (default 4)."),
    verify: Optional[bool] = typer.Option(None, "--verify/--no-verify", help="Parity vs ONNX Runtime (default on)."),
) -> None:
    """Build a TensorRT engine (needs an NVIDIA GPU and `pip install 'aucues\\[gpu]'`) with a dynamic-
    batch profile, check it against ONNX Runtime; exit code 2 when the check fails."""
    from aucues.errors import AucuesError
    from aucues.export.tensorrt_engine import EngineConfig, build_engine

    cfg = _merge(EngineConfig, {}, dict(fp16=fp16, min_batch=min_batch, opt_batch=opt_batch,
                                        max_batch=max_batch, workspace_gb=workspace, verify=verify))
    if out.suffix.lower() not in (".plan", ".engine"):
        raise AucuesError(f"{out}: the engine file should end in .plan")
    report = _run_with_status(f"building engine from {model.name}", lambda p: build_engine(model, out, cfg, p))
    _finish(report)


def register(app: typer.Typer) -> None:
    app.command("export")(_one_line_errors(export_command))
    app.command("engine")(_one_line_errors(engine_command))
