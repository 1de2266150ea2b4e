"""Checkpoint (or FERModel) -> verified ONNX with aucues metadata.

Steps: trace the ExportWrapper (dynamo or torchscript exporter, example batch EXAMPLE_BATCH with an
explicit dynamic dimension named "batch") -> name check -> onnxslim (optional) -> fp16 (optional,
input/outputs stay float32) -> metadata (verified=false) -> verification (export/verify.py) ->
metadata verified=<result> -> atomic write -> <name>.report.json beside it.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from aucues.errors import AucuesError
from aucues.export.config import EXAMPLE_BATCH, ExportConfig
from aucues.export.formats import ExportFormat, register_format
from aucues.export.report import ExportReport

BATCH_DIM = "batch"
AU_KEYS = {"au_loss": "loss", "au_layers": "layers", "au_lambda": "lambda", "random_avg_p": "random_avg_p",
           "map_kind": "map_kind", "codebook": "codebook"}


@contextmanager
def _quiet():
    """The exporters warn about things that are fine here (deprecations, constant folding);
    users see our one-line summary instead."""
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.__trace",
                                                  "torch.fx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def _export_dynamo(wrapper, example, path: str, names: list[str], opset: int) -> None:
    import torch

    batch = torch.export.Dim(BATCH_DIM, min=1, max=65536)
    torch.onnx.export(wrapper, (example,), path, dynamo=True, external_data=False, opset_version=opset,
                      input_names=["image"], output_names=names, dynamic_shapes={"image": {0: batch}},
                      verbose=False, optimize=True)


def _export_torchscript(wrapper, example, path: str, names: list[str], opset: int) -> None:
    import torch

    axes = {n: {0: BATCH_DIM} for n in ["image", *names]}
    torch.onnx.export(wrapper, (example,), path, dynamo=False, opset_version=opset, input_names=["image"],
                      output_names=names, dynamic_axes=axes, do_constant_folding=True, verbose=False)


EXPORTER_FUNCS: dict[str, Callable] = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def load_source(model_or_checkpoint):
    """-> (model in eval mode, checkpoint info dict, checkpoint path or None, sha256 or None)."""
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        from aucues.train.checkpoint import checkpoint_sha256, load_checkpoint

        model, info = load_checkpoint(model_or_checkpoint, map_location="cpu")
        return model, info, str(model_or_checkpoint), checkpoint_sha256(model_or_checkpoint)
    model = model_or_checkpoint
    if not (hasattr(model, "config") and hasattr(model, "preprocess") and hasattr(model, "layer_shapes")):
        raise AucuesError(f"cannot export {type(model).__name__}: expected a checkpoint path or an aucues FERModel")
    return model, {}, None, None


def au_info(info: dict) -> dict | None:
    """AU-guidance settings from the checkpoint's extra: an explicit "au" dict, or the au_* keys of a
    training config stored at the top level or one level down (info["train_config"] first)."""
    if isinstance(info.get("au"), dict):
        return dict(info["au"])
    # a training run (train/run_folder.py) stores its TrainConfig under "train_config"; other dicts
    # are searched after it
    nested = [info["train_config"]] if isinstance(info.get("train_config"), dict) else []
    nested += [v for v in info.values() if isinstance(v, dict) and v is not info.get("train_config")]
    for src in [info, *nested]:
        if "au_layers" in src or "au_lambda" in src:
            return {new: src[old] for old, new in AU_KEYS.items() if old in src}
    return None


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _check_names_and_batch(model, names: list[str]) -> None:
    """Graph IO must be exactly image / names with a symbolic first dimension named "batch"."""
    ins = [i.name for i in model.graph.input]
    outs = [o.name for o in model.graph.output]
    if ins != ["image"] or outs != names:
        raise AucuesError(f"exporter produced inputs {ins} and outputs {outs}, expected ['image'] and {names}")
    for vi in [*model.graph.input, *model.graph.output]:
        dim0 = vi.type.tensor_type.shape.dim[0]
        if not dim0.dim_param:
            raise AucuesError(f"exporter fixed the batch dimension of '{vi.name}' at {dim0.dim_value}")
        dim0.dim_param = BATCH_DIM  # exporters may call it s0/batch_size; one name for every IO


def _simplify(model):
    import onnxslim

    with _quiet():
        return onnxslim.slim(model)


def _to_fp16(model):
    # onnxruntime ships the converter (onnxconverter-common is not installed; onnxslim's dtype option
    # needs it). keep_io_types: clients keep sending and reading float32.
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with _quiet():
        model = convert_float_to_float16(model, keep_io_types=True)
    _toposort(model.graph)  # the converter appends its input casts at the end: invalid order
    return model


def _toposort(graph) -> None:
    """Reorder graph.node so every node comes after the producers of its inputs (stable)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes, ordered = list(graph.node), []
    pending = nodes
    while pending:
        rest = []
        for n in pending:
            # subgraph (If/Loop) outer-scope inputs are not checked; the exported graphs have none
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise AucuesError(f"graph has a cycle or an undefined input near node {rest[0].name!r}")
        pending = rest
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _serialize(model) -> bytes:
    try:
        return model.SerializeToString()
    except ValueError as e:  # protobuf's 2 GB limit
        raise AucuesError(f"model too large for a single ONNX file ({e})") from None


def _check_output_path(out: Path) -> None:
    """Fail before minutes of export work, not at the final write."""
    if out.suffix.lower() != ".onnx":
        raise AucuesError(f"{out}: the output file should end in .onnx")
    if out.is_dir():
        raise AucuesError(f"{out}: is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AucuesError(f"cannot create {out.parent}: {e.strerror or e}") from None
    if not os.access(out.parent, os.W_OK):
        raise AucuesError(f"{out.parent}: not writable")


@contextmanager
def _timed(timings: dict[str, float], key: str):
    t = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t


def _build_graph(wrapper, example, raw: str, cfg: ExportConfig, names, timings, step):
    """Trace with the chosen exporter, then onnxslim and fp16 as configured; names and the dynamic
    batch are checked after every rewrite."""
    import onnx
    import torch

    step(f"exporting with {cfg.exporter}")
    with _timed(timings, "export"):
        try:
            with _quiet(), torch.no_grad():
                EXPORTER_FUNCS[cfg.exporter](wrapper, example, raw, names, int(cfg.opset))
        except AucuesError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise AucuesError(f"{cfg.exporter} exporter failed: {msg} (try --exporter "
                              f"{'torchscript' if cfg.exporter == 'dynamo' else 'dynamo'})") from None
        proto = onnx.load(raw)
        _check_names_and_batch(proto, names)
    if cfg.simplify:
        step("simplifying (onnxslim)")
        with _timed(timings, "simplify"):
            proto = _simplify(proto)
            _check_names_and_batch(proto, names)
    if cfg.fp16:
        step("converting to fp16")
        with _timed(timings, "fp16"):
            proto = _to_fp16(proto)
    return proto


def _verify(candidate: str, wrapper, names, pre, cfg: ExportConfig, report: ExportReport, timings, step) -> None:
    """ORT on the candidate file against the PyTorch wrapper (docs/export.md); results into `report`."""
    import torch

    from aucues.export.verify import verify_onnx

    if not cfg.verify:
        report.notes.append("verification skipped (verify=False)")
        return
    step("verifying (onnx.checker, ONNX Runtime vs PyTorch)")

    def reference(x):
        with torch.no_grad():
            y = wrapper(torch.from_numpy(x))
        return [v.numpy() for v in (y if isinstance(y, tuple) else (y,))]

    with _timed(timings, "verify"):
        res = verify_onnx(candidate, reference, names, pre, cfg.batch, cfg.resolved_tolerances, cfg.seed)
    report.verified, report.failures, report.checker = res.ok, res.failures, res.checker
    report.errors, report.batch_sizes, report.notes = res.errors, res.batch_sizes, res.notes
    timings.update({f"verify.{k}": v for k, v in res.timings_s.items()})


def export_onnx(model_or_checkpoint, out: str | os.PathLike, cfg: ExportConfig | None = None,
                progress: Callable[[str], None] | None = None) -> ExportReport:
    """Export, verify and write `out` (+ `<name>.report.json`). Never raises for a verification
    failure: the file is written with metadata verified=false and `report.verified` is False."""
    import torch

    from aucues.io import atomic_write_bytes
    from aucues.export.metadata import build_metadata, set_metadata
    from aucues.export.wrapper import ExportWrapper

    cfg = cfg or ExportConfig()
    step = progress or (lambda _msg: None)
    out = Path(out)
    _check_output_path(out)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    step("loading model")
    with _timed(timings, "load"):
        model, info, ckpt, sha = load_source(model_or_checkpoint)
    pre = model.preprocess
    layers = tuple(cfg.layers) if cfg.outputs == "all" else ()
    wrapper = ExportWrapper(model, cfg.outputs, layers)
    names = wrapper.output_names
    size = pre.image_size
    shapes = model.layer_shapes(size)
    report = ExportReport(path=str(out), exporter=cfg.exporter, opset=int(cfg.opset), outputs=names,
                          simplified=cfg.simplify, fp16=cfg.fp16, checkpoint=ckpt, checkpoint_sha256=sha,
                          config=cfg.to_dict(), tolerances=cfg.resolved_tolerances.to_dict())

    with tempfile.TemporaryDirectory(prefix="aucues-export-") as tmp:
        example = torch.randn(EXAMPLE_BATCH, pre.channels, size, size, generator=torch.Generator().manual_seed(cfg.seed))
        proto = _build_graph(wrapper, example, os.path.join(tmp, "raw.onnx"), cfg, names, timings, step)
        proto.producer_name, proto.producer_version = "aucues", _version()
        proto.doc_string = f"aucues FER model ({model.config.backbone}); metadata key 'aucues'"
        meta = build_metadata(
            preprocess=_replace_layers(pre, layers), model_config=model.config.to_dict(), outputs=names,
            layers={k: shapes[k] for k in layers}, cam_size=shapes[5] if "cam" in names else None,
            has_cam=wrapper.has_cam, attention_layer=getattr(model, "aligned_layer", 5),
            au=au_info(info), checkpoint_sha256=sha, exporter=cfg.exporter, opset=int(cfg.opset),
            fp16=cfg.fp16, simplified=cfg.simplify, verified=False)
        set_metadata(proto, meta)
        candidate = os.path.join(tmp, "candidate.onnx")
        Path(candidate).write_bytes(_serialize(proto))
        _verify(candidate, wrapper, names, pre, cfg, report, timings, step)

        meta["verified"] = report.verified
        set_metadata(proto, meta)
        step(f"writing {out}")
        with _timed(timings, "write"):
            data = _serialize(proto)
            atomic_write_bytes(out, data)

    report.file_size_bytes = len(data)
    report.shapes = {o.name: _dims(o) for o in proto.graph.output}
    timings["total"] = time.perf_counter() - t_start
    report.timings_s = {k: round(v, 4) for k, v in timings.items()}
    if cfg.write_report:
        report.save()
    return report


def _replace_layers(pre, layers):
    import dataclasses

    return dataclasses.replace(pre, attention_layers=tuple(layers))


def _version() -> str:
    import aucues

    return aucues.__version__


@register_format
class OnnxFormat(ExportFormat):
    name, suffix, source = "onnx", ".onnx", "checkpoint"
    description = "ONNX graph with aucues metadata, verified against PyTorch in ONNX Runtime"

    def export(self, source, out, **options) -> ExportReport:
        return export_onnx(source, out, ExportConfig(**options))
