"""ONNX -> TensorRT engine (raw serialized bytes, what Triton's tensorrt_plan backend loads), with an
optimisation profile for the dynamic batch and a parity check of the engine against ONNX Runtime.

Needs an NVIDIA GPU and `pip install 'aucues[gpu]'` (tensorrt); both are probed lazily so this module
imports everywhere. Buffers are torch CUDA tensors (no pycuda/cuda-python dependency).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aucues.errors import AucuesError
from aucues.export.config import Tolerances
from aucues.export.formats import ExportFormat, register_format
from aucues.export.report import ExportReport

INSTALL_HINT = "pip install 'aucues[gpu]'"
# TensorRT picks other kernels than ONNX Runtime's CPU ones (TF32 is switched off for fp32 engines).
ENGINE_FP32_TOLERANCES = Tolerances(atol=1e-3, min_cosine=0.9999)
ENGINE_FP16_TOLERANCES = Tolerances(atol=2e-2, min_cosine=0.999)
# A QDQ INT8 graph (`export --int8 --int8-activations int8`): both runtimes requantise, but round and
# fuse differently, so one int8 step apart is expected (not measured yet: no GPU run so far).
ENGINE_INT8_TOLERANCES = Tolerances(atol=1e-1, min_cosine=0.99)


@dataclass
class EngineConfig:
    fp16: bool = False
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    workspace_gb: float = 4.0
    verify: bool = True
    tolerances: Tolerances | None = None
    write_report: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise AucuesError(f"batch sizes must satisfy 1 <= min ({self.min_batch}) <= opt ({self.opt_batch})"
                              f" <= max ({self.max_batch})")
        if not self.workspace_gb > 0:
            raise AucuesError(f"workspace must be > 0 GB, got {self.workspace_gb}")

    @property
    def resolved_tolerances(self) -> Tolerances:
        if self.tolerances is not None:
            return self.tolerances
        return ENGINE_FP16_TOLERANCES if self.fp16 else ENGINE_FP32_TOLERANCES

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tolerances"] = self.resolved_tolerances.to_dict()
        return d


def import_tensorrt():
    """The tensorrt module, or a one-line AucuesError with the install hint."""
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # ImportError, or a broken install failing to load its libraries
        why = "not installed" if isinstance(e, ImportError) and "tensorrt" in str(e) else f"cannot load ({e})"
        raise AucuesError(f"TensorRT is {why}: {INSTALL_HINT} on a machine with an NVIDIA GPU") from None
    return tensorrt


def gpu_available() -> tuple[bool, str]:
    try:
        import torch

        if torch.cuda.is_available():
            return True, torch.cuda.get_device_name(0)
        return False, "no CUDA GPU visible (torch.cuda.is_available() is False)"
    except Exception as e:  # pragma: no cover - torch is a hard dependency
        return False, f"cannot query CUDA ({e})"


def require_gpu_tensorrt():
    """tensorrt module when both TensorRT and a GPU are there; else one line naming what is missing."""
    ok, why = gpu_available()
    try:
        trt = import_tensorrt()
    except AucuesError as e:
        if ok:
            raise
        raise AucuesError(f"TensorRT engines need an NVIDIA GPU and TensorRT: {why}; tensorrt is not "
                          f"installed ({INSTALL_HINT})") from None
    if not ok:
        raise AucuesError(f"TensorRT engines need an NVIDIA GPU: {why}")
    return trt


def _torch_dtype(trt, dt):
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
    if hasattr(trt.DataType, "INT64"):
        table[trt.DataType.INT64] = torch.int64
    if dt not in table:
        raise AucuesError(f"engine tensor type {dt} is not supported by the parity check")
    return table[dt]


def _onnx_input(onnx_path: Path) -> tuple[int, int, object]:
    """(H, W, PreprocessConfig) from the ONNX file: aucues metadata when present, else the input shape."""
    from aucues.preprocessing import PreprocessConfig
    from aucues.export.metadata import load_onnx, metadata_from_model

    model = load_onnx(onnx_path)
    ins = [i for i in model.graph.input if i.name == "image"]
    if not ins:
        raise AucuesError(f"{onnx_path}: no input named 'image' (export it with `aucues export`)")
    dims = [d.dim_param or d.dim_value for d in ins[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not isinstance(dims[2], int) or not isinstance(dims[3], int) or not dims[2]:
        raise AucuesError(f"{onnx_path}: input 'image' has shape {dims}, expected (batch, C, H, W)")
    if isinstance(dims[0], int) and dims[0] > 0:
        raise AucuesError(f"{onnx_path}: batch dimension is fixed at {dims[0]}; re-export with a dynamic batch")
    try:
        pre = PreprocessConfig.from_dict(metadata_from_model(model, str(onnx_path))["preprocess"])
    except AucuesError:
        pre = PreprocessConfig(image_size=int(dims[2]), channels=dims[1] if dims[1] in (1, 3) else 3)
    return int(dims[2]), int(dims[3]), pre


class TrtRunner:
    """Runs a deserialized engine on numpy inputs with torch CUDA buffers."""

    def __init__(self, trt, engine_bytes: bytes):
        import torch

        self.trt, self.torch = trt, torch
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise AucuesError("TensorRT could not deserialize the engine it just built")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        # Own stream: TensorRT adds synchronisations on the legacy default stream.
        self.stream = torch.cuda.Stream()

    def run(self, x: np.ndarray, order: list[str] | None = None) -> list[np.ndarray]:
        torch, trt = self.torch, self.trt
        with torch.cuda.stream(self.stream):
            image = torch.from_numpy(np.ascontiguousarray(x, np.float32)).cuda()
            self.context.set_input_shape("image", tuple(image.shape))
            self.context.set_tensor_address("image", image.data_ptr())
            bufs = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                bufs[name] = torch.empty(shape, dtype=dtype, device="cuda")
                self.context.set_tensor_address(name, bufs[name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise AucuesError("TensorRT execution failed")
            self.stream.synchronize()
            return [bufs[n].float().cpu().numpy() for n in (order or self.outputs)]

    def latency_ms(self, x: np.ndarray, runs: int = 20) -> float:
        self.run(x)
        t = time.perf_counter()
        for _ in range(runs):
            self.run(x)
        return (time.perf_counter() - t) / runs * 1000


def build_engine(onnx_path: str | Path, out: str | Path, cfg: EngineConfig | None = None,
                 progress=None) -> ExportReport:
    """Build, write (atomically) and check a TensorRT engine. Raises AucuesError without GPU/TensorRT;
    a parity failure leaves the engine written and report.verified False."""
    from aucues.io import atomic_write_bytes
    from aucues.export.verify import compare, make_inputs, ort_session

    cfg = cfg or EngineConfig()
    step = progress or (lambda _m: None)
    onnx_path, out = Path(onnx_path), Path(out)
    h, w, pre = _onnx_input(onnx_path)       # file errors first: they need no GPU
    trt = require_gpu_tensorrt()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    step("parsing ONNX")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)).strip().splitlines()[0] for i in range(parser.num_errors))
        raise AucuesError(f"{onnx_path}: TensorRT cannot parse the model: {errs[:300]}")
    names = [network.get_output(i).name for i in range(network.num_outputs)]

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gb * (1 << 30)))
    qdq = any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers))
    if qdq:
        # explicit quantization (Q/DQ in the graph); weakly typed networks still take the INT8 flag
        if hasattr(trt.BuilderFlag, "INT8"):
            config.set_flag(trt.BuilderFlag.INT8)
        if cfg.tolerances is None:
            cfg = dataclasses.replace(cfg, tolerances=ENGINE_INT8_TOLERANCES)
    if cfg.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 engines match ONNX Runtime to ~1e-5, not ~1e-3
    profile = builder.create_optimization_profile()
    c = pre.channels  # 1 for a grayscale model (PreprocessConfig.channels)
    profile.set_shape("image", (cfg.min_batch, c, h, w), (cfg.opt_batch, c, h, w), (cfg.max_batch, c, h, w))
    config.add_optimization_profile(profile)

    step("building engine (minutes for ResNet50)")
    t = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise AucuesError("TensorRT failed to build the engine (see the TensorRT log above)")
    data = bytes(serialized)
    timings["build"] = time.perf_counter() - t
    atomic_write_bytes(out, data)

    report = ExportReport(path=str(out), format="tensorrt", outputs=names, fp16=cfg.fp16,
                          config=cfg.to_dict(), tolerances=cfg.resolved_tolerances.to_dict(),
                          file_size_bytes=len(data), checker="n/a")
    report.notes.append(f"source ONNX: {onnx_path}; TensorRT {trt.__version__}; GPU {gpu_available()[1]}")
    if cfg.verify:
        step("checking the engine against ONNX Runtime")
        t = time.perf_counter()
        runner = TrtRunner(trt, data)
        sess = ort_session(onnx_path)
        tol = cfg.resolved_tolerances
        sizes = sorted({cfg.min_batch, cfg.opt_batch})
        for n in sizes:
            inputs, notes = make_inputs(pre, n)
            for (kind, b), x in inputs.items():
                if b != n:
                    continue
                ref = sess.run(names, {"image": x})
                got = runner.run(x, names)
                for name, r, g in zip(names, ref, got):
                    e = compare(name, r, g, tol)
                    e.update(input=kind, batch=n)
                    report.errors.append(e)
                    if not e["ok"]:
                        report.failures.append(f"{name} ({kind}, batch {n}): max_abs {e['max_abs']:.3g} > "
                                               f"{e['limit']:.3g} or cosine {e['cosine']:.6f} < {tol.min_cosine}")
        report.batch_sizes = sizes
        report.notes.append(notes[0])
        report.verified = not report.failures
        timings["verify"] = time.perf_counter() - t
        x1 = make_inputs(pre, 1)[0][("random", 1)]
        report.notes.append(f"engine latency batch 1: {runner.latency_ms(x1):.2f} ms")
    else:
        report.notes.append("parity check skipped (verify=False)")
    timings["total"] = time.perf_counter() - t0
    report.timings_s = {k: round(v, 4) for k, v in timings.items()}
    if cfg.write_report:
        report.save()
    return report


@register_format
class TensorRTFormat(ExportFormat):
    name, suffix, source = "tensorrt", ".plan", "onnx"
    description = "TensorRT engine (serialized plan for Triton's tensorrt_plan backend); needs a GPU"

    def available(self) -> tuple[bool, str]:
        try:
            require_gpu_tensorrt()
            return True, ""
        except AucuesError as e:
            return False, str(e)

    def export(self, source, out, **options) -> ExportReport:
        return build_engine(source, out, EngineConfig(**options))
