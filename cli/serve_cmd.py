"""`aucues repository build`, `aucues serve`, `aucues predict`: the Triton serving stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

repository_app = typer.Typer(help="Triton model repositories for exported models.", no_args_is_help=True)


@repository_app.command("build")
def repository_build(
    out: Path = typer.Option(..., "--out", help="Repository folder to write (its model folders are replaced if this command wrote it)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint to export first."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="ONNX exported by `aucues export`."),
    backend: str = typer.Option("python", "--backend",
                                help="Classifier backend: python (ONNX Runtime in the Python backend; the "
                                     "wheel's tritonserver), onnxruntime or tensorrt (NGC Triton container)."),
    plan: Optional[Path] = typer.Option(None, "--plan", help="TensorRT engine for --backend tensorrt."),
    instances: int = typer.Option(2, "--instances", help="Instances of each model (2 measured best on 2 cores)."),
    max_batch: int = typer.Option(32, "--max-batch", help="Largest dynamic batch."),
    trt_accelerator: bool = typer.Option(False, "--trt-accelerator",
                                         help="onnxruntime backend: TensorRT execution accelerator (GPU, FP16)."),
    dynamic_batching: bool = typer.Option(True, "--dynamic-batching/--no-dynamic-batching",
                                          help="Classifier dynamic batching (may not pay on a small CPU host)."),
    force: bool = typer.Option(False, "--force",
                               help="Write into a non-empty folder this command did not create (only its "
                                    "preprocess, classifier, postprocess and aucues folders are replaced)."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified",
                                          help="Accept an ONNX whose export verification failed, was skipped "
                                               "or is not recorded (refused by default)."),
    landmarker: str = typer.Option("mediapipe", "--landmarker",
                                   help="mediapipe (in the preprocess model) or onnx (the detector and mesh "
                                        "as batched models the preprocess calls; docs/onnx_landmarks.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Write a complete Triton model repository (preprocess, classifier, postprocess, the `aucues`
    ensemble) whose configs are generated from the model's ONNX metadata."""
    from aucues.serve.repository import build_repository

    report = build_repository(out, onnx=onnx, checkpoint=checkpoint, backend=backend, plan=plan,
                              instances=instances, max_batch=max_batch, trt_accelerator=trt_accelerator,
                              dynamic_batching=dynamic_batching, force=force, allow_unverified=allow_unverified,
                              landmarker=landmarker)
    if json_out:
        print(json.dumps(report, indent=1))
        return
    from aucues.cli.common import console

    console.print(f"[green]wrote[/] {report['repository']} (classifier backend {report['backend']}, "
                  f"{report['image_size']} px, {len(report['class_names'])} classes, "
                  f"attention layers {', '.join(report['layers'])}{', INT8' if report.get('int8') else ''})",
                  highlight=False)
    if not report.get("verified"):
        console.print("[yellow]warning[/] the model is not verified (--allow-unverified)", highlight=False)
    console.print(f"serve it with: aucues serve --repository {report['repository']}", highlight=False)


def serve(
    repository: Path = typer.Option(Path("runs/model_repository"), "--repository", help="Model repository."),
    http_port: int = typer.Option(8000, "--http-port"),
    grpc_port: int = typer.Option(8001, "--grpc-port"),
    metrics_port: int = typer.Option(8002, "--metrics-port"),
    address: str = typer.Option("127.0.0.1", "--address", help="Listen address (0.0.0.0 for every interface)."),
    tritonserver: Optional[Path] = typer.Option(None, "--tritonserver",
                                                help="tritonserver binary (default: the nvidia-pytriton wheel's)."),
    timeout: float = typer.Option(180.0, "--timeout", help="Seconds to wait for the server to be ready."),
    admin_apis: bool = typer.Option(False, "--admin-apis",
                                    help="Leave shared-memory, model-repository, trace and logging APIs open "
                                         "to every client (default: restricted)."),
    watchdog: bool = typer.Option(True, "--watchdog/--no-watchdog",
                                  help="Reload a model whose Python stub process died (explicit model control; "
                                       "not ready while it reloads)."),
) -> None:
    """Start tritonserver on a model repository, wait until it is ready, print the endpoints and run
    until Ctrl-C or SIGTERM (forwarded to the server, which stops cleanly)."""
    import signal

    from aucues.cli.common import console
    from aucues.serve.tritonserver import TritonServer

    server = TritonServer(repository, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                          binary=tritonserver, address=address, admin_apis=admin_apis, watchdog=watchdog,
                          on_event=lambda msg: console.print(f"[yellow]watchdog[/] {msg}", highlight=False))
    console.print(f"starting {server.binary} on {server.repository} ...", highlight=False)
    stopping = []

    def forward(signum, _frame):
        stopping.append(signum)
        server.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        server.start(timeout=timeout)
        console.print(f"[green]ready[/] in {server.start_seconds:.1f} s (pid {server.pid})\n"
                      f"  HTTP     {server.http_url}\n  gRPC     {server.grpc_url}\n  metrics  {server.metrics_url}\n"
                      f"  predict: aucues predict IMAGE --url {server.http_url}", highlight=False)
        code = server.wait()
        if not stopping:
            from aucues.cli.common import fail

            fail(f"tritonserver exited with code {code}; log tail:\n{server.log_tail()}")
        console.print("stopped", highlight=False)
    finally:
        server.stop()
        for s, h in old.items():
            signal.signal(s, h)


def predict(
    inputs: List[str] = typer.Argument(..., help="Images, folders or videos (mp4, avi, ...)."),
    url: Optional[str] = typer.Option(None, "--url", help="Server address (default localhost:8000 http, :8001 grpc)."),
    protocol: str = typer.Option("http", "--protocol", help="http or grpc."),
    overlays: Optional[Path] = typer.Option(None, "--overlays", help="Write overlay PNGs to this folder."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per input (JSON lines)."),
    fps: float = typer.Option(2.0, "--fps", help="Frames per second sampled from videos."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request."),
    batch: int = typer.Option(1, "--batch", help="Images per request (each still gets its own answer or error)."),
) -> None:
    """Classify faces with a running server: label, probabilities, AU evidence and the
    interpretability score per image; non-zero exit if any input failed."""
    from aucues.cli.common import err_console, fail
    from aucues.serve.client import ServerUnreachable
    from aucues.serve.predict import run_predict

    try:
        ok, failed = run_predict(inputs, url=url, protocol=protocol, overlays=overlays, as_json=json_out,
                                 fps=fps, emit=lambda s: print(s, flush=True), timeout=timeout,
                                 batch=batch)
    except ServerUnreachable as e:
        fail(str(e))
        return
    if failed:
        err_console.print(f"{failed} of {ok + failed} inputs failed", highlight=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(repository_app, name="repository")
    app.command("serve")(serve)
    app.command("predict")(predict)
