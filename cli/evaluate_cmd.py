"""`aucues evaluate CKPT`: accuracy, macro F1 and the interpretability metrics (docs/method.md §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)


def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `aucues train` (best.pt / last.pt) "
                                                 "or `aucues import`."),
    data: str = typer.Option(..., "--data", help="Dataset root (or a CSV file for --dataset folder); a folder "
                             "of raw photos without a landmark cache gets its faces found and framed on the fly."),
    dataset: str = typer.Option("rafdb", "--dataset", help="rafdb | affectnet | folder | synthetic."),
    split: str = typer.Option("test", "--split", help="train | val | test | all."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write the confusion matrix and example panels here."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per batch."),
    cams: str = typer.Option("gradcam,gradcampp,layercam", "--cams",
                             help="Gradient CAM methods for CAM-COS (comma list; 'none' for plain CAM only)."),
    num_workers: int = typer.Option(0, "--num-workers", help="Data loader processes."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
) -> None:
    """Evaluate a checkpoint on a dataset split."""
    from aucues.errors import AucuesError
    from aucues.train.evaluate import evaluate

    if device not in ("auto", "cpu", "cuda"):
        raise AucuesError(f"--device must be auto, cpu or cuda, got {device!r}")
    methods = tuple(m.strip() for m in cams.split(",") if m.strip() and m.strip().lower() != "none")
    result = evaluate(checkpoint, data, dataset, split=split, plots_dir=plots, cam_methods=methods,
                      batch_size=batch_size, num_workers=num_workers, device=device, progress=not json_out)
    if json_out:
        print(json.dumps(result))
        return
    _print_table(result, checkpoint, dataset, split, plots)


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.2f}%" if pct else f"{v:.3f}"


def _print_table(r: dict, checkpoint, dataset, split, plots) -> None:
    from rich.table import Table

    from aucues.cli.common import console

    t = Table(title=f"{checkpoint} on {dataset} {split} ({r['n_images']} images, {r['n_skipped']} skipped)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("accuracy", _fmt(r["accuracy"], True))
    t.add_row("macro F1", _fmt(r["macro_f1"]))
    for layer, v in r["att_cos"].items():
        t.add_row(f"ATT-COS layer {layer}", _fmt(v))
    if r.get("has_cam", True):
        t.add_row(f"CAM-COS ({r.get('method', 'cam')}: own CAM)", _fmt(r["cam_cos"]))
        for m in ("gradcam", "gradcampp", "layercam"):
            t.add_row(f"CAM-COS ({m})", _fmt(r[f"cam_cos_{m}"]))
    console.print(t)
    if not r.get("has_cam", True):
        console.print(f"{r.get('method', 'this model')} has no CAM: CAM-COS not applicable "
                      "(interpretability is the layer attention, ATT-COS above)")
    sel = r.get("selection")
    if sel is None:
        console.print("model selection: unknown (checkpoint without a training config)")
    else:
        every = sel.get("valid_every_fraction")
        console.print(f"model selection: on the {sel['select_on']} split"
                      + (f", validated every {every:g} of an epoch" if every else ", validated once per epoch")
                      + (" [yellow](selected on the test split: these test scores are optimistic)[/]"
                         if sel.get("optimistic") else ""))
    pc = Table(title="per-class accuracy")
    for name in r["per_class_accuracy"]:
        pc.add_column(name, justify="right")
    pc.add_row(*[_fmt(v, True) for v in r["per_class_accuracy"].values()])
    console.print(pc)
    if r.get("landmarks"):
        console.print(f"landmarks: {r['landmarks']}")
    if plots:
        console.print(f"plots: {plots}")
