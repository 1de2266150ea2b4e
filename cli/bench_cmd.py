"""`aucues bench model | preprocess | serve | train`: measured ratios, written as JSON, Markdown and PNG
plots into --out (default runs/bench/<name>). The measuring lives in the stage modules
(export/bench.py, aucues/preprocess_bench.py, serve/bench.py, train/bench.py); this is the thin CLI."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import List, Optional

import typer

bench_app = typer.Typer(help="Benchmarks: model backends, preprocessing, serving, training step.",
                        no_args_is_help=True)


def _ints(text: str, what: str) -> tuple[int, ...]:
    from aucues.errors import AucuesError

    try:
        vals = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise AucuesError(f"{what} takes comma-separated integers, got '{text}'") from None
    if not vals:
        raise AucuesError(f"{what} is empty")
    return vals


@contextlib.contextmanager
def _progress(title: str):
    """A rich spinner + elapsed time; the library reports each step as one line of text."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from aucues.cli.common import err_console

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[title]}[/] {task.description}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as p:
        task = p.add_task("starting", title=title)
        yield lambda msg: p.update(task, description=msg)


def _finish(payload: dict, paths: dict, json_out: Optional[Path], markdown: bool = True) -> None:
    from aucues.io import atomic_write_json
    from aucues.cli.common import console

    if json_out is not None:
        atomic_write_json(json_out, payload)
        paths = {**paths, "json_copy": str(json_out)}
    if markdown:
        console.print(Path(paths["markdown"]).read_text(), highlight=False, markup=False, soft_wrap=True)
    for k, v in paths.items():
        console.print(f"[green]{k}[/]: {v}", highlight=False)


def _out(out: Optional[Path], name: str) -> Path:
    return Path(out) if out is not None else Path("runs/bench") / name


@bench_app.command("model")
def bench_model(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint to benchmark."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Exported ONNX (torch runs a random-weight model "
                                                             "of the same architecture)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Random-weight model of this backbone."),
    image_size: int = typer.Option(224, "--image-size", help="Input size with --backbone."),
    small_maps: bool = typer.Option(False, "--small-maps", help="With --backbone: standard strides (no large maps)."),
    backends: str = typer.Option("torch,ort,trt", "--backends", help="Comma-separated: torch, ort, trt."),
    batch_sizes: str = typer.Option("1,8,32", "--batch-sizes"),
    runs: int = typer.Option(20, "--runs", help="Timed interleaved rounds per batch size (at most)."),
    max_seconds: float = typer.Option(90.0, "--max-seconds", help="Time budget per batch size; fewer rounds "
                                                                  "(at least 3) when the models are slow."),
    threads: int = typer.Option(0, "--threads", help="torch and ORT intra-op threads (0 = every core)."),
    int8_calibration: Optional[Path] = typer.Option(None, "--int8-calibration",
                                                    help="Aligned faces: also time the QDQ INT8 graph (ort-int8)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the JSON payload here."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/bench/model)."),
) -> None:
    """p50/p90/p99 latency and throughput per backend and batch size, same inputs for every backend,
    interleaved: PyTorch eager, ONNX Runtime (full graph and logits-only), TensorRT."""
    from aucues.export.bench import ModelBenchConfig, run_model_bench, write_model_results

    cfg = ModelBenchConfig(backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
                           batch_sizes=_ints(batch_sizes, "--batch-sizes"), runs=runs, max_seconds=max_seconds,
                           threads=threads, int8_calibration=str(int8_calibration) if int8_calibration else None)
    out_dir = _out(out, "model")
    with _progress("bench model") as step:
        payload = run_model_bench(checkpoint=checkpoint, onnx=onnx, backbone=backbone, image_size=image_size,
                                  large_maps=not small_maps, cfg=cfg, workdir=out_dir, progress=step)
    _finish(payload, write_model_results(payload, out_dir), json_out)


@bench_app.command("preprocess")
def bench_preprocess(
    images: Optional[List[Path]] = typer.Argument(None, help="Photos (default: the gathered sample photos)."),
    runs: int = typer.Option(10, "--runs", help="Warm interleaved rounds."),
    cold_runs: int = typer.Option(2, "--cold-runs", help="Fresh-landmarker runs per image."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/bench/preprocess)."),
) -> None:
    """Landmarks (MediaPipe) + alignment per image: cold (incl. MediaPipeLandmarker construction) and warm."""
    from aucues.preprocess_bench import run_preprocess_bench, write_preprocess_results

    out_dir = _out(out, "preprocess")
    with _progress("bench preprocess") as step:
        payload = run_preprocess_bench(images or None, runs=runs, cold_runs=cold_runs, progress=step)
    _finish(payload, write_preprocess_results(payload, out_dir), json_out)


@bench_app.command("serve")
def bench_serve(
    url: Optional[str] = typer.Option(None, "--url", help="A running server (host:port)."),
    protocol: str = typer.Option("http", "--protocol", help="http or grpc."),
    repository: Optional[Path] = typer.Option(None, "--repository", help="Start tritonserver on this repository."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Build repositories from this ONNX (and run it "
                                                             "in-process)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Face photo to send (default astronaut.png)."),
    concurrency: str = typer.Option("1,2,4,8", "--concurrency"),
    duration: float = typer.Option(10.0, "--duration", help="Seconds of load per point and variant."),
    rounds: int = typer.Option(2, "--rounds", help="Windows per point; the variants alternate window by window."),
    no_inprocess: bool = typer.Option(False, "--no-inprocess", help="Skip the in-process pipeline."),
    landmarker: str = typer.Option("mediapipe", "--landmarker", help="The in-process pipeline's landmarker: "
                                   "mediapipe or onnx (the converted models, batched)."),
    compare_landmarkers: bool = typer.Option(False, "--compare-landmarkers",
                                             help="With --onnx: also a repository whose face detector and mesh "
                                                  "are served models (--landmarker onnx), alternating windows."),
    no_batching_compare: bool = typer.Option(False, "--no-batching-compare",
                                             help="Skip the repository without dynamic batching."),
    perf_analyzer: bool = typer.Option(False, "--perf-analyzer", help="Also measure the first Triton variant "
                                       "with NVIDIA's perf_analyzer; its numbers beside aucues's."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/bench/serve)."),
) -> None:
    """The Triton ensemble end to end (image bytes in) at several concurrencies, with and without
    dynamic batching, against the in-process pipeline in threads; Triton's server-side statistics."""
    from aucues.serve.bench import ServeBenchConfig, run_serve_bench
    from aucues.serve.bench_report import write_serve_results

    cfg = ServeBenchConfig(concurrency=_ints(concurrency, "--concurrency"), duration=duration, rounds=rounds,
                           protocol=protocol,
                           inprocess=not no_inprocess, compare_batching=not no_batching_compare,
                           landmarker=landmarker, compare_landmarkers=compare_landmarkers,
                           perf_analyzer=perf_analyzer)
    out_dir = _out(out, "serve")
    with _progress("bench serve") as step:
        payload = run_serve_bench(url=url, repository=repository, onnx=onnx, image=image, cfg=cfg, progress=step)
    _finish(payload, write_serve_results(payload, out_dir), json_out)


@bench_app.command("train")
def bench_train(
    backbone: str = typer.Option("resnet18", "--backbone"),
    image_size: int = typer.Option(112, "--image-size"),
    batch_size: int = typer.Option(16, "--batch-size"),
    layers: str = typer.Option("5", "--layers", help="AU alignment layers (1..5)."),
    lam: float = typer.Option(9.0, "--lambda", help="AU loss weight."),
    runs: int = typer.Option(20, "--runs", help="Interleaved rounds."),
    threads: int = typer.Option(0, "--threads", help="torch threads (0 = default)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (with --device cuda)."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/bench/train)."),
) -> None:
    """Training step time: CE-only against CE + AU alignment loss, same model and batch, interleaved."""
    from aucues.train.bench import run_train_bench, write_train_results

    out_dir = _out(out, "train")
    with _progress("bench train") as step:
        payload = run_train_bench(backbone=backbone, image_size=image_size, batch_size=batch_size,
                                  layers=_ints(layers, "--layers"), lam=lam, runs=runs, threads=threads,
                                  device=device, amp=amp, progress=step)
    _finish(payload, write_train_results(payload, out_dir), json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


@bench_app.command("landmarks")
def bench_landmarks(
    images: Optional[List[Path]] = typer.Argument(None, help="Photos (default: the gathered sample photos)."),
    providers: str = typer.Option("cpu,cuda,tensorrt", "--providers",
                                  help="ONNX Runtime providers to measure: cpu, cuda, tensorrt (FP16)."),
    batch_sizes: str = typer.Option("1,8,64", "--batch-sizes"),
    runs: int = typer.Option(20, "--runs", help="Timed runs per network and batch size."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="TensorRT engine cache folder "
                                         "(default runs/trt_cache/landmarks)."),
    json_out: Optional[Path] = typer.Option(None, "--json"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/bench/landmarks)."),
) -> None:
    """The ONNX landmark networks on CPU, CUDA and TensorRT (ONNX Runtime, as a GPU Triton serves them):
    latency per network and batch, and parity with the CPU (same faces, 68-point distance). Exit 2 when
    a measured provider misses the parity bar."""
    from aucues.onnx_landmarks.device_bench import run_landmark_device_bench, write_landmark_device_results

    kinds = tuple(k for k in providers.replace(" ", "").split(",") if k)
    out_dir = _out(out, "landmarks")
    with _progress("bench landmarks") as step:
        payload = run_landmark_device_bench(kinds, _ints(batch_sizes, "--batch-sizes"), runs=runs,
                                            images=images or None, cache=cache, progress=step)
    _finish(payload, write_landmark_device_results(payload, out_dir), json_out)
    if payload["landmarks"] and not payload["parity_ok"]:
        raise typer.Exit(2)
