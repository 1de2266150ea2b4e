"""`aucues demo`: the whole pipeline on the embedded default (cli.demo_pipeline)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for every artifact (re-runs reuse finished steps)."),
    config: Path = typer.Option(Path("demo"), "--config", help="Training recipe: a TrainConfig YAML or a packaged recipe name."),
    per_class: int = typer.Option(None, "--per-class", help="Synthetic images per class (train + test)."),
    image_size: int = typer.Option(None, "--image-size", help="Size the synthetic faces are drawn at."),
    seed: int = typer.Option(0, "--seed"),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start tritonserver, predict and benchmark."),
    bench_seconds: float = typer.Option(None, "--bench-seconds", help="Seconds per serving-benchmark point."),
) -> None:
    """Synthesize → train CE-only and AU-guided → evaluate → export → Triton → predict → bench → report."""
    from aucues.errors import AucuesError
    from aucues.cli.common import console
    from aucues.cli.demo_pipeline import DemoConfig, run_demo

    cfg = DemoConfig(out=str(out), train_config=str(config), seed=seed, serve=serve)
    if per_class is not None:
        cfg.per_class = per_class
    if image_size is not None:
        cfg.image_size = image_size
    if bench_seconds is not None:
        cfg.bench_seconds = bench_seconds
    if cfg.per_class < 8:
        raise AucuesError("--per-class must be >= 8 (train, validation and test need samples of every class)")
    run_demo(cfg, console)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
