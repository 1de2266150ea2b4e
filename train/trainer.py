"""The training loop: `train(TrainConfig) -> TrainResult` (the CLI only parses flags into the config).

What it is built from: train/build.py; what it writes and resumes from (config.yaml, metrics.csv,
last.pt, best.pt): train/run_folder.py.

Reproducibility: data order comes from a DistributedSampler seeded with (seed, epoch) (world size 1
without torchrun), augmentations from per-sample generators seeded with (seed, epoch, index), and
the global RNGs are reseeded with (seed, epoch, rank) at the start of every epoch
(train/reproducibility.py). So a run resumed from last.pt after a kill reproduces the uninterrupted
run exactly (CPU, same num_workers); the RNG states are saved in last.pt and restored as well.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from aucues.errors import AucuesError
from aucues.train.build import TrainState, build_data, build_state
from aucues.train.config import TrainConfig, config_from_dict
from aucues.train.distributed import DistEnv, all_reduce_sum, barrier, cleanup, init_distributed, unwrap, wrap_model
from aucues.train.methods import get_method
from aucues.train.reproducibility import epoch_seed, seed_everything
from aucues.train.run_folder import (check_start, checkpoint_extra, remove_stale_temporaries, resume_extra,
                                     resume_run, write_metrics)

log = logging.getLogger("aucues.train")


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_accuracy: float | None
    epochs_done: int
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    n_skipped: int = 0
    rank: int = 0                 # DDP rank of this process (only rank 0 has the history)


# ------------------------------------------------------------------------------------------------
# The loop

def _progress(enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True)


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train a model as `config` says; returns where the checkpoints are and the per-epoch history."""
    from aucues.train.init_from import apply_init

    config = apply_init(config_from_dict(config.to_dict()))  # validated copy; --init's architecture
    if not config.data:
        raise AucuesError("no dataset given (--data DIR)")
    env = init_distributed(config.device)
    try:
        return _train(config, env, progress)
    finally:
        cleanup(env)


def _train(config: TrainConfig, env: DistEnv, progress: bool) -> TrainResult:
    from rich.console import Console

    from aucues.train.data import SkipLog

    console = Console(stderr=True, quiet=not env.is_main)
    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"

    check_start(config, env, out, last_path)
    if env.is_main and out.is_dir():
        for p in remove_stale_temporaries(out):
            console.print(f"removed {p.name} (left by an interrupted write)")
    seed_everything(config.seed)
    from aucues.train.init_from import init_preprocess

    index, train_ds, val_ds = build_data(config, init_preprocess(config))
    s = build_state(config, env, train_ds)
    if config.resume:
        resume_run(config, env, s, out, last_path, best_path, console)
    from aucues.train.protocol import selection_phrase, validation_interval

    s.selection = selection_phrase(config, index)
    ddp_model = wrap_model(s.model, env)
    sampler, loader, val_loader = _make_loaders(config, env, train_ds, val_ds)
    if env.is_main:
        _announce(config, env, out, index, train_ds, val_ds, console)
        every = validation_interval(len(loader), config.valid_every_fraction)
        console.print(f"model selection on {s.selection}, validated "
                      + (f"every {every} steps and " if every else "") + "after every epoch")

    skips = SkipLog(log)
    stopped = False
    epoch = s.start_epoch
    for epoch in range(s.start_epoch, config.epochs):
        t0 = time.time()
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        seed_everything(epoch_seed(config.seed, epoch, env.rank))
        mid = None  # the reference's in-epoch validations (train/protocol.py)
        if env.is_main and val_loader is not None and config.valid_every_fraction > 0:
            mid = functools.partial(_validate_mid_epoch, config, env, s, ddp_model, val_loader, epoch,
                                    best_path=best_path, console=console)
        row = _train_epoch(config, env, s, ddp_model, loader, skips, epoch, progress, mid)
        if env.is_main:
            _finish_epoch(config, env, s, ddp_model, val_loader, row, t0, out, last_path, best_path, console)
        barrier(env)
        if config.stop_after_epoch is not None and epoch + 1 >= config.stop_after_epoch and epoch + 1 < config.epochs:
            stopped = True
            console.print(f"stopping after epoch {epoch + 1} (stop_after_epoch); continue with --resume")
            break

    history, best = s.history, s.best
    n_skipped = int(history[-1]["n_skipped"]) if history else 0
    if env.is_main and n_skipped:
        console.print(f"[yellow]warning:[/] {n_skipped} unreadable training images were skipped")
    return TrainResult(run_dir=out, best_checkpoint=best_path, last_checkpoint=last_path,
                       best_epoch=int(best["epoch"]), best_val_accuracy=best["accuracy"],
                       epochs_done=len(history) if env.is_main else epoch + 1, history=history,
                       stopped_early=stopped, n_skipped=n_skipped, rank=env.rank)


def _announce(config: TrainConfig, env: DistEnv, out: Path, index, train_ds, val_ds, console) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # the recipe, not this invocation: a later `--resume` or a rerun starts from it
    dataclasses.replace(config, resume=False, stop_after_epoch=None).save(out / "config.yaml")
    console.print(index.summary())
    n_lm = train_ds.n_with_landmarks
    console.print(f"train {len(train_ds)} (AU landmarks for {n_lm}), val {len(val_ds) if val_ds else 0}; "
                  f"{config.backbone} {config.image_size}px, method {config.method}, AU loss "
                  + (f"layers {list(config.au_layers)} lambda {config.au_lambda}" if config.au_loss else "off")
                  + (f"; DDP x{env.world_size}" if env.enabled else "") + f"; device {env.device}")
    if config.au_loss and n_lm == 0:
        console.print("[yellow]warning:[/] no landmarks for the training images: AU maps are invalid, "
                      "training is CE only (run `aucues data prepare` / provide aucues_landmarks68.sqlite)")



def _make_loaders(config: TrainConfig, env: DistEnv, train_ds, val_ds):
    from aucues.train.data import collate

    per_rank_batch = max(1, config.batch_size // env.world_size)
    sampler = DistributedSampler(train_ds, num_replicas=env.world_size, rank=env.rank, shuffle=True,
                                 seed=config.seed, drop_last=False)
    loader = DataLoader(train_ds, batch_size=per_rank_batch, sampler=sampler, num_workers=config.num_workers,
                        collate_fn=collate, pin_memory=env.device.type == "cuda",
                        persistent_workers=False)
    val_loader = None
    if val_ds is not None and env.is_main:
        val_loader = DataLoader(val_ds, batch_size=per_rank_batch, shuffle=False,
                                num_workers=config.num_workers, collate_fn=collate)
    return sampler, loader, val_loader


def _train_epoch(config: TrainConfig, env: DistEnv, s: TrainState, ddp_model, loader, skips, epoch: int,
                 progress: bool, mid_validate=None) -> dict:
    """One pass over the training data; -> the epoch's metrics row (validation columns still empty).
    `mid_validate(step, n_batches)` runs after the steps train/protocol.py says (rank 0 only)."""
    from aucues.train.protocol import mid_epoch_due

    ddp_model.train()
    sums = torch.zeros(4, dtype=torch.float64)  # loss*n, ce*n, align*n, n
    lr = s.optimizer.param_groups[0]["lr"]
    with _progress(progress and env.is_main) as bar:
        task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=len(loader), info="")
        for i, batch in enumerate(loader):
            skips.update(batch)
            parts, n = _step(ddp_model, s.criterion, s.optimizer, s.scaler, batch, env, s.use_amp)
            if n:
                total = parts.total.item()
                if not math.isfinite(total) and not s.use_amp:
                    # without a GradScaler that skips such steps, the weights are now NaN/inf too:
                    # stop before anything is saved (the earlier epochs' checkpoints stay as they are)
                    _diverged(config, epoch, f"the loss was {total} (CE {parts.ce.item():.4g}, AU "
                                             f"alignment {parts.align.item():.4g}) at step {i + 1}")
                sums += torch.tensor([total * n, parts.ce.item() * n,
                                      parts.align.item() * n, n], dtype=torch.float64)
            bar.update(task, advance=1, info=f"loss {sums[0] / max(sums[3], 1):.4f}")
            if mid_validate is not None and mid_epoch_due(i, len(loader), config.valid_every_fraction):
                mid_validate(i + 1, len(loader))
                ddp_model.train()
    bad = [name for name, p in unwrap(ddp_model).named_parameters() if not torch.isfinite(p).all()]
    if bad:  # (AMP: the scaler skips steps with inf gradients, so this is a divergence it could not stop)
        _diverged(config, epoch, f"{len(bad)} weight tensors became NaN/inf (first: {bad[0]})")
    s.scheduler.step()
    all_reduce_sum(sums, env)
    n_skip = torch.tensor([float(skips.count)], dtype=torch.float64)
    all_reduce_sum(n_skip, env)
    return {"epoch": epoch + 1, "lr": lr, "train_loss": _r(sums[0] / max(sums[3], 1)),
            "train_ce": _r(sums[1] / max(sums[3], 1)), "train_align": _r(sums[2] / max(sums[3], 1)),
            "val_accuracy": None, "val_ce": None, "val_att_cos_5": None, "time_s": None,
            "n_skipped": int(n_skip.item())}


def _diverged(config: TrainConfig, epoch: int, what: str) -> None:
    raise AucuesError(f"training diverged in epoch {epoch + 1}: {what}; nothing of this epoch was saved "
                      f"(earlier epochs' checkpoints in {config.out} are kept); lower --lr (now {config.lr:g})"
                      + (f" or --au-lambda (now {config.au_lambda:g})" if config.au_loss else ""))


def _finish_epoch(config: TrainConfig, env: DistEnv, s: TrainState, ddp_model, val_loader, row: dict, t0: float,
                  out: Path, last_path: Path, best_path: Path, console) -> None:
    """Rank 0: validate, update best, then write best.pt (if improved) BEFORE last.pt, then metrics.csv.
    That order keeps every kill point resumable: last.pt never names a best epoch best.pt lacks."""
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.evaluate import validate

    if val_loader is not None:
        v = validate(unwrap(ddp_model), val_loader, env.device, use_amp=s.use_amp, progress=False)
        row.update(val_accuracy=_r(v["accuracy"]), val_ce=_r(v["ce"]), val_att_cos_5=_r(v["att_cos_5"]))
    row["time_s"] = round(time.time() - t0, 2)
    s.history.append(row)
    improved = _improved(row, s.best) if val_loader is not None else True
    if improved:
        s.best = {"epoch": row["epoch"], "accuracy": row["val_accuracy"], "ce": row["val_ce"]}
    if val_loader is not None:
        s.validations.append({"epoch": row["epoch"], "step": None, "accuracy": row["val_accuracy"],
                              "ce": row["val_ce"], "att_cos_5": row["val_att_cos_5"]})
    extra_common = checkpoint_extra(config, s, {k: row[k] for k in ("val_accuracy", "val_ce", "val_att_cos_5")},
                                    row["epoch"])
    if improved:
        save_checkpoint(best_path, unwrap(ddp_model), extra_common)
    save_checkpoint(last_path, unwrap(ddp_model), {**extra_common, **resume_extra(config, env, s, row["epoch"])})
    write_metrics(out / "metrics.csv", s.history)
    from aucues.train.protocol import write_selection

    write_selection(out / "selection.json", config, s.selection, s.best, s.validations)
    console.print(_epoch_line(row, config.epochs, improved))


def _validate_mid_epoch(config: TrainConfig, env: DistEnv, s: TrainState, ddp_model, val_loader, epoch: int,
                        step: int, n_steps: int, best_path: Path, console) -> None:
    """Rank 0, inside epoch `epoch` after `step` of its `n_steps` steps: validate; a better model is
    written to best.pt at once (best["step"] says it is a mid-epoch one)."""
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.evaluate import validate

    v = validate(unwrap(ddp_model), val_loader, env.device, use_amp=s.use_amp, progress=False)
    rec = {"epoch": epoch + 1, "step": step, "accuracy": _r(v["accuracy"]), "ce": _r(v["ce"]),
           "att_cos_5": _r(v["att_cos_5"])}
    s.validations.append(rec)
    improved = _improved({"val_accuracy": rec["accuracy"], "val_ce": rec["ce"]}, s.best)
    if improved:
        s.best = {"epoch": epoch + 1, "step": step, "accuracy": rec["accuracy"], "ce": rec["ce"]}
        save_checkpoint(best_path, unwrap(ddp_model), checkpoint_extra(
            config, s, {"val_accuracy": rec["accuracy"], "val_ce": rec["ce"], "val_att_cos_5": rec["att_cos_5"]},
            epoch + 1))
    console.print(f"  epoch {epoch + 1} step {step}/{n_steps} | val acc {rec['accuracy']:.4f}"
                  + (" *" if improved else ""))


def _r(x) -> float:
    return round(float(x), 6)


def _improved(row: dict, best: dict) -> bool:
    if best["accuracy"] is None:
        return True
    if row["val_accuracy"] != best["accuracy"]:
        return row["val_accuracy"] > best["accuracy"]
    return row["val_ce"] < best["ce"]  # tie on accuracy (small validation sets): lower CE


def _epoch_line(row: dict, epochs: int, improved: bool) -> str:
    s = (f"epoch {row['epoch']}/{epochs} lr {row['lr']:.2e} loss {row['train_loss']:.4f} "
         f"(ce {row['train_ce']:.4f}, align {row['train_align']:.4f})")
    if row["val_accuracy"] is not None:
        s += f" | val acc {row['val_accuracy']:.4f} att-cos5 {row['val_att_cos_5']:.3f}"
    return s + f" | {row['time_s']:.1f}s" + (" *" if improved else "")


def _step(model, criterion, optimizer, scaler, batch, env: DistEnv, use_amp: bool):
    """One optimisation step; returns (LossParts, n samples). A batch whose images were all unreadable
    still joins the DDP gradient all-reduce (zero gradients, see _empty_step) so ranks never deadlock."""
    n = batch["n"]
    device = env.device
    if n == 0:
        if env.enabled:
            _empty_step(model, optimizer, scaler, device, use_amp)
        return None, 0
    x = batch["image"].to(device, non_blocking=True)
    y = batch["label"].to(device, non_blocking=True)
    amap = batch["au_map"].to(device, non_blocking=True)
    valid = batch["valid"].to(device, non_blocking=True)
    cfg = unwrap(model).config  # the method's training step (CutMix mixing, ACoL's label and 2nd head)
    with torch.autocast(device.type, enabled=use_amp):
        parts = get_method(cfg.method).step_loss(model, criterion, x, y, amap, valid, cfg.method_options)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(parts.total).backward()
    scaler.step(optimizer)
    scaler.update()
    return parts, n


def _empty_step(model, optimizer, scaler, device, use_amp: bool) -> None:
    """This rank has no image in this batch; the others still all-reduce gradients, so it contributes
    zeros. The dummy pass runs in eval mode: BatchNorm neither normalises with nor folds into its
    running statistics the dummy's batch statistics (train mode dragged them toward an all-zero
    batch), and DDP still prepares the reducer, which does not depend on the mode. torch's Join
    context does not fit here: the rank has batches after this one, and a joined rank skips
    optimizer.step, so its momentum buffers would part from the other replicas'."""
    pp = unwrap(model).preprocess
    x = torch.zeros(1, pp.channels, pp.image_size, pp.image_size, device=device)
    model.eval()
    try:
        with torch.autocast(device.type, enabled=use_amp):
            out = model(x)
            # cam too: a method head's other branch (ACoL's B) must join the gradient all-reduce
            cam = 0.0 if out.cam is None else out.cam.sum()  # APViT has no CAM
            total = (out.logits.sum() + cam + sum(a.sum() for a in out.attentions.values())) * 0.0
    finally:
        model.train()
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)  # every rank steps with the same averaged gradients: replicas stay equal
    scaler.update()
