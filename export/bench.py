"""`aucues bench model`: the same model, the same inputs, several backends, timed round-robin.

Backends (each one a variant of `aucues.benchmark.interleaved`, so machine drift hits them alike):
    torch          PyTorch eager fp32, eval + no_grad (the FERModel forward: logits, CAM, attentions)
    torch-cuda(-amp)  the same on the GPU, fp32 and fp16 autocast (when CUDA is there)
    ort-full       ONNX Runtime CPU on the exported full graph (logits, probabilities, cam, attention_k)
    ort-logits     ONNX Runtime CPU on the logits-only export of the same model
    ort-int8       ONNX Runtime CPU on the QDQ INT8 quantization of the full graph (--int8-calibration DIR;
                   export/quantize.py, the same code as `aucues export --int8`)
    ort-cuda-*     the same graphs on ONNX Runtime's CUDA execution provider (when it is there)
    trt-*          TensorRT engines built from the two graphs (GPU + tensorrt only)
A backend that cannot run here is reported in `skipped` with the reason, never silently dropped.
full vs logits is the price of the interpretability outputs; weights do not change speed, so a
random-weight model (`--backbone`) measures the same as a trained one."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from aucues.benchmark import paired_ratio
from aucues.errors import AucuesError
from aucues.preprocessing import DEFAULT_IMAGE_SIZE

BACKENDS = ("torch", "ort", "trt")
Progress = Callable[[str], None]


@dataclass
class ModelBenchConfig:
    backends: tuple[str, ...] = BACKENDS
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    runs: int = 20                 # timed rounds per batch size (fewer when max_seconds would be passed)
    min_runs: int = 3
    warmup: int = 2                # untimed calls of every variant before timing
    max_seconds: float = 90.0      # time budget of the timed rounds of one batch size (all variants)
    threads: int = 0               # torch threads and ORT intra-op threads; 0 = every core
    seed: int = 0
    int8_calibration: str | None = None  # folder of aligned faces: also time the INT8 graph (ort-int8)

    def __post_init__(self) -> None:
        self.backends = tuple(dict.fromkeys(self.backends))
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad or not self.backends:
            raise AucuesError(f"unknown backend(s) {', '.join(bad) or '(none)'}; choose among {', '.join(BACKENDS)}")
        self.batch_sizes = tuple(sorted(set(int(b) for b in self.batch_sizes)))
        if not self.batch_sizes or self.batch_sizes[0] < 1 or self.batch_sizes[-1] > 1024:
            raise AucuesError(f"batch sizes must be in 1..1024, got {list(self.batch_sizes)}")
        if self.runs < 1 or self.min_runs < 1 or self.warmup < 0 or self.threads < 0:
            raise AucuesError("runs and min_runs must be >= 1, warmup and threads >= 0")


# ---------------------------------------------------------------------------------------------------
# Sources: a model to run eagerly and the two ONNX graphs


def build_random_model(backbone: str, image_size: int, large_maps: bool = True):
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.models import ModelConfig, build_model

    import torch

    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, weights="random", large_maps=large_maps)
    return build_model(cfg, PreprocessConfig(image_size=int(image_size))).eval()


def model_from_onnx(onnx_path: str | Path):
    """A random-weight FERModel of the architecture recorded in an exported ONNX's metadata."""
    from aucues.preprocessing import PreprocessConfig
    from aucues.export.metadata import read_metadata
    from aucues.train.models import ModelConfig, build_model

    meta = read_metadata(onnx_path)
    try:
        cfg = ModelConfig.from_dict({**meta["model_config"], "weights": "random"})
        pre = PreprocessConfig.from_dict(meta["preprocess"])
    except (KeyError, TypeError) as e:
        raise AucuesError(f"{onnx_path}: aucues metadata lacks the model config ({e})") from None
    cfg = dataclasses.replace(cfg, attention_layers=tuple(cfg.attention_layers))
    pre = dataclasses.replace(pre, attention_layers=tuple(cfg.attention_layers))
    return build_model(cfg, pre).eval()


def onnx_outputs(path: str | Path) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]


def _reusable(path: Path, model, mode: str) -> bool:
    """An earlier export of the same architecture and output mode (random weights: same speed)."""
    from aucues.export.metadata import read_metadata

    try:
        meta = read_metadata(path)
        return (meta.get("model_config") == model.config.to_dict() and meta.get("checkpoint_sha256") is None
                and (onnx_outputs(path) == ["logits"]) == (mode == "logits")
                and meta.get("preprocess", {}).get("image_size") == model.preprocess.image_size)
    except Exception:  # noqa: BLE001 - unreadable: export again
        return False


def export_pair(model, workdir: Path, progress: Progress, given_onnx: Path | None = None,
                reuse: bool = False) -> dict[str, Path]:
    """{"full": path, "logits": path}: exports of `model` (export_onnx, verification off: speed only),
    except the mode `given_onnx` already covers. reuse: keep an earlier export of a random-weight model
    of the same architecture."""
    from aucues.export.config import ExportConfig
    from aucues.export.onnx_export import export_onnx

    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if given_onnx is not None:
        out["logits" if onnx_outputs(given_onnx) == ["logits"] else "full"] = Path(given_onnx)
    name = f"{model.config.backbone}_{model.preprocess.image_size}"
    for mode in ("full", "logits"):
        if mode in out:
            continue
        path = workdir / f"{name}_{mode}.onnx"
        if reuse and path.is_file() and _reusable(path, model, mode):
            progress(f"reusing {path}")
            out[mode] = path
            continue
        progress(f"exporting the {mode} graph to {path.name}")
        export_onnx(model, path, ExportConfig(outputs="all" if mode == "full" else "logits", verify=False,
                                              write_report=False))
        out[mode] = path
    return out


def int8_graph(full: Path, calibration: str | Path, workdir: Path, progress: Progress) -> Path:
    """The QDQ INT8 quantization of `full`, calibrated on the faces of `calibration` (all of them: a
    speed measurement has no check set; `aucues export --int8` verifies)."""
    import tempfile

    from aucues.export.metadata import preprocess_from_onnx
    from aucues.export.quantize import Int8Config, load_faces, quantize, split_faces

    qcfg = Int8Config(calibration=str(calibration), max_calibration=64)
    calib, check = split_faces(qcfg)
    faces = load_faces(calib + check, preprocess_from_onnx(full))
    out = workdir / f"{full.stem}_int8.onnx"
    progress(f"quantizing {full.name} to INT8 on {len(faces)} faces")
    with tempfile.TemporaryDirectory(prefix="aucues-int8-") as tmp:
        quantize(full, out, faces, qcfg, Path(tmp))
    return out


# ---------------------------------------------------------------------------------------------------
# Runners: each returns a zero-argument callable per batch


def ort_session(path: Path, provider: str = "CPUExecutionProvider", threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    # Idle intra-op threads otherwise spin after each run and steal the cores from the next variant
    # of an interleaved round (and from other processes on a shared machine).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), so, providers=[provider])
    except Exception as e:  # noqa: BLE001
        raise AucuesError(f"{path}: ONNX Runtime cannot load it on {provider} ({e})") from None


def _ort_fn(sess, x: np.ndarray) -> Callable[[], object]:
    feed = {"image": x}
    return lambda: sess.run(None, feed)


def _torch_fn(model, x: np.ndarray, device: str = "cpu", amp: bool = False) -> Callable[[], object]:
    import contextlib

    import torch

    t = torch.from_numpy(x).to(device)
    # AMP: fp16 autocast, as a GPU deployment in PyTorch would run it (TensorRT fp16's counterpart)
    cast = (lambda: torch.autocast(device_type="cuda", dtype=torch.float16)) if amp else contextlib.nullcontext

    def run():
        with torch.inference_mode(), cast():
            out = model(t)
        if device != "cpu":
            torch.cuda.synchronize()
        return out

    return run


@dataclass
class Backends:
    """Per variant: a factory batch -> callable; plus the reasons of skipped backends."""

    factories: dict[str, Callable[[np.ndarray], Callable[[], object]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def setup_backends(model, graphs: dict[str, Path], cfg: ModelBenchConfig, workdir: Path,
                   progress: Progress) -> Backends:
    b = Backends()
    if "torch" in cfg.backends:
        import torch

        if model is None:
            b.skipped["torch"] = "no PyTorch model"
        else:
            b.factories["torch"] = lambda x: _torch_fn(model, x)
            if torch.cuda.is_available():
                gpu_model = _copy_to(model, "cuda")
                b.factories["torch-cuda"] = lambda x: _torch_fn(gpu_model, x, "cuda")
                b.factories["torch-cuda-amp"] = lambda x: _torch_fn(gpu_model, x, "cuda", amp=True)
    if "ort" in cfg.backends:
        import onnxruntime as ort

        for mode, path in graphs.items():
            progress(f"loading {path.name} in ONNX Runtime")
            sess = ort_session(path, threads=cfg.threads)
            b.factories[f"ort-{mode}"] = lambda x, s=sess: _ort_fn(s, x)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            for mode, path in graphs.items():
                sess = ort_session(path, "CUDAExecutionProvider")
                if sess.get_providers()[0] == "CUDAExecutionProvider":
                    b.factories[f"ort-cuda-{mode}"] = lambda x, s=sess: _ort_fn(s, x)
        else:
            b.skipped["ort-cuda"] = f"CUDAExecutionProvider not available (providers: {', '.join(ort.get_available_providers())})"
    if "trt" in cfg.backends:
        _setup_trt(b, graphs, cfg, workdir, progress)
    return b


def _copy_to(model, device: str):
    import copy

    return copy.deepcopy(model).to(device).eval()


def _setup_trt(b: Backends, graphs: dict[str, Path], cfg: ModelBenchConfig, workdir: Path,
               progress: Progress) -> None:
    from aucues.export.tensorrt_engine import EngineConfig, TrtRunner, build_engine, require_gpu_tensorrt

    try:
        trt = require_gpu_tensorrt()
    except AucuesError as e:
        b.skipped["trt"] = str(e)
        return
    hi = max(cfg.batch_sizes)
    opt = min(hi, max(8, min(cfg.batch_sizes)))
    for mode, path in graphs.items():
        plan = workdir / f"{path.stem}.plan"
        progress(f"building a TensorRT engine from {path.name} (minutes)")
        try:
            build_engine(path, plan, EngineConfig(min_batch=1, opt_batch=opt, max_batch=hi, verify=False,
                                                  write_report=False))
        except AucuesError as e:
            b.skipped[f"trt-{mode}"] = str(e)
            continue
        runner = TrtRunner(trt, plan.read_bytes())
        b.factories[f"trt-{mode}"] = lambda x, r=runner: (lambda: r.run(x))


# ---------------------------------------------------------------------------------------------------
# The measurement


def _runs_for(fns: dict[str, Callable[[], object]], cfg: ModelBenchConfig) -> tuple[int, dict[str, float]]:
    """One untimed call of each variant (the first warm-up call) tells how many timed rounds fit."""
    first = {}
    for k, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[k] = (time.perf_counter() - t0) * 1000.0
    per_round = sum(first.values()) / 1000.0
    fit = int(cfg.max_seconds / per_round) if per_round > 0 else cfg.runs
    return max(cfg.min_runs, min(cfg.runs, fit)), first


def run_model_bench(*, checkpoint: str | Path | None = None, onnx: str | Path | None = None,
                    backbone: str | None = None, image_size: int = DEFAULT_IMAGE_SIZE, large_maps: bool = True,
                    cfg: ModelBenchConfig | None = None, workdir: str | Path = "runs/bench/model",
                    progress: Progress | None = None) -> dict:
    """Measure; returns the JSON-able payload (rows per backend and batch size, ratios, skipped)."""
    cfg = cfg or ModelBenchConfig()
    step = progress or (lambda _m: None)
    if sum(v is not None for v in (checkpoint, onnx, backbone)) != 1:
        raise AucuesError("give exactly one of --checkpoint, --onnx or --backbone")
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    workdir = Path(workdir)
    step("building the model")
    if checkpoint is not None:
        from aucues.train.checkpoint import load_checkpoint

        model, _ = load_checkpoint(checkpoint)
        source = {"checkpoint": str(checkpoint)}
    elif onnx is not None:
        model = model_from_onnx(onnx)  # same architecture, random weights: same speed
        source = {"onnx": str(onnx), "torch_model": "random weights, architecture from the ONNX metadata"}
    else:
        model = build_random_model(backbone, image_size, large_maps)
        source = {"backbone": backbone, "weights": "random", "large_maps": large_maps}
    model.eval()
    size = model.preprocess.image_size
    graphs = export_pair(model, workdir / "onnx", step, Path(onnx) if onnx is not None else None,
                         reuse=checkpoint is None) if ({"ort", "trt"} & set(cfg.backends)) else {}
    if cfg.int8_calibration and "full" in graphs:
        graphs["int8"] = int8_graph(graphs["full"], cfg.int8_calibration, workdir / "onnx", step)
    backends = setup_backends(model, graphs, cfg, workdir / "onnx", step)
    if not backends.factories:
        raise AucuesError(f"no backend can run here: {backends.skipped}")

    rng = np.random.default_rng(cfg.seed)
    rows, timings = [], {}
    for bs in cfg.batch_sizes:
        x = rng.standard_normal((bs, model.preprocess.channels, size, size), dtype=np.float32)  # one input array for every backend
        fns = {name: make(x) for name, make in backends.factories.items()}
        step(f"batch {bs}: warm-up ({', '.join(fns)})")
        runs, first = _runs_for(fns, cfg)
        step(f"batch {bs}: {runs} interleaved rounds of {len(fns)} backends")
        from aucues.benchmark import interleaved

        # the sizing call was the first warm-up; slow rounds (large batches) need no more than that
        extra = max(0, cfg.warmup - 1) if sum(first.values()) / 1000.0 * 10 < cfg.max_seconds else 0
        res = interleaved(fns, batch=bs, warmup=extra, runs=runs)
        for name, t in res.items():
            t.extra = {"backend": name, "first_call_ms": round(first[name], 2)}
            rows.append(t.summary())
            timings[(name, bs)] = t
    return {
        "benchmark": "model",
        "source": source,
        "model": {"backbone": model.config.backbone, "image_size": size, "large_maps": model.config.large_maps,
                  "attention_layers": list(model.config.attention_layers),
                  "graphs": {k: str(v) for k, v in graphs.items()}},
        "config": dataclasses.asdict(cfg),
        "threads": {"torch": torch.get_num_threads(), "ort_intra_op": cfg.threads or os.cpu_count()},
        "load_avg": list(os.getloadavg()),
        "rows": rows,
        "ratios": model_ratios(timings),
        "samples": {f"{n}@{b}": [round(v, 2) for v in t.samples_ms] for (n, b), t in timings.items()},
        "skipped": backends.skipped,
    }


def model_ratios(timings: dict) -> list[dict]:
    """Ratios inside one run: ORT vs torch, full vs logits, per batch size; of the p50s and paired
    per round (the figure the targets use)."""
    out = []
    sizes = sorted({b for _, b in timings})
    pairs = [("ort-full", "torch", "ORT CPU full / PyTorch eager"),
             ("ort-logits", "torch", "ORT CPU logits-only / PyTorch eager"),
             ("ort-full", "ort-logits", "ORT full graph / logits-only"),
             ("ort-int8", "ort-full", "ORT INT8 / ORT FP32 (full graph)"),
             ("ort-cuda-full", "ort-cuda-logits", "ORT CUDA full / logits-only"),
             ("trt-full", "trt-logits", "TensorRT full / logits-only"),
             ("trt-full", "ort-cuda-full", "TensorRT / ORT CUDA (full)"),
             ("trt-full", "torch-cuda-amp", "TensorRT / PyTorch CUDA AMP (full)")]
    for bs in sizes:
        for a, b, what in pairs:
            if (a, bs) in timings and (b, bs) in timings:
                ta, tb = timings[(a, bs)], timings[(b, bs)]
                out.append({"ratio": what, "batch": bs, "numerator": a, "denominator": b,
                            "p50_ratio": round(ta.p50 / tb.p50, 3), **paired_ratio(ta.samples_ms, tb.samples_ms)})
    return out


def write_model_results(payload: dict, out_dir: str | Path) -> dict[str, str]:
    from aucues.benchmark import line_plot, markdown_table, write_results

    out = Path(out_dir)
    rows = payload["rows"]
    cols = ["backend", "batch", "runs", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "first_call_ms"]
    md = f"# aucues bench model\n\nmodel: {payload['model']['backbone']} {payload['model']['image_size']} px " \
         f"(large maps {payload['model']['large_maps']}), threads {payload['threads']}, " \
         f"load average {', '.join(f'{v:.2f}' for v in payload['load_avg'])}\n\n"
    md += markdown_table(rows, cols) + "\n## Ratios (same run; paired = median of the per-round ratios)\n\n"
    md += markdown_table(payload["ratios"], ["ratio", "batch", "paired", "paired_q25", "paired_q75", "p50_ratio"])
    if payload["skipped"]:
        md += "\n## Skipped\n\n" + "".join(f"- {k}: {v}\n" for k, v in payload["skipped"].items())
    paths = write_results(out, "model", payload, md)
    names = list(dict.fromkeys(r["backend"] for r in rows))
    lat = {n: ([r["batch"] for r in rows if r["backend"] == n], [r["p50_ms"] for r in rows if r["backend"] == n])
           for n in names}
    thr = {n: ([r["batch"] for r in rows if r["backend"] == n],
               [r["throughput_per_s"] for r in rows if r["backend"] == n]) for n in names}
    line_plot(out / "model_latency.png", lat, "batch size", "p50 latency (ms)", "Latency vs batch size", logx=True)
    line_plot(out / "model_throughput.png", thr, "batch size", "images / s", "Throughput vs batch size", logx=True)
    paths.update(latency_plot=str(out / "model_latency.png"), throughput_plot=str(out / "model_throughput.png"))
    return paths
