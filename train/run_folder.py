"""A training run's folder: config.yaml (resolved config), metrics.csv (one row per epoch), last.pt
(everything a resume needs), best.pt (the model with the best validation accuracy; ties -> lower val
CE) and selection.json (train/protocol.py).

Here: deciding start vs resume, what the checkpoints hold beyond the model (`checkpoint_extra` in both,
`resume_extra` in last.pt only) and reading it back (`resume_run`), metrics.csv, and the cleanup of
temporaries an interrupted atomic write left. train/trainer.py writes best.pt before last.pt, so
every kill point stays resumable: last.pt never names a best epoch best.pt lacks."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from aucues.errors import AucuesError
from aucues.train.build import TrainState
from aucues.train.config import TrainConfig
from aucues.train.distributed import DistEnv, broadcast_object
from aucues.train.reproducibility import rng_state, set_rng_state

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_ce", "train_align", "val_accuracy", "val_ce",
                  "val_att_cos_5", "time_s", "n_skipped")
# Keys that may differ between the original run and its resume (everything else must match).
RESUME_FREE_KEYS = ("epochs", "num_workers", "stop_after_epoch", "resume", "device", "out", "data")
_RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "config.yaml", "selection.json")


def check_start(config: TrainConfig, env: DistEnv, out: Path, last_path: Path) -> None:
    """Decide start/resume on rank 0 and share the verdict so every rank fails the same way."""
    verdict = None
    if env.is_main:
        if config.resume and not last_path.is_file():
            verdict = f"--resume: no {last_path} to resume from"
        elif not config.resume and last_path.exists():
            verdict = f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out"
    verdict = broadcast_object(verdict, env)
    if verdict:
        raise AucuesError(verdict)


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete the `.NAME.*.tmp` files an atomic write killed half-way left in the run folder (only
    for the files the trainer writes)."""
    removed = []
    for p in [p for name in _RUN_FILES for p in out.glob(f".{name}.*.tmp")]:
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def write_metrics(path: Path, history: list[dict]) -> None:
    from aucues.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def checkpoint_extra(config: TrainConfig, s: TrainState, val_metrics: dict, epoch: int) -> dict:
    """The extras best.pt and last.pt both hold (train/checkpoint.py `extra`)."""
    return {"epoch": epoch, "train_config": config.to_dict(), "history": s.history, "best": s.best,
            "val_metrics": val_metrics, "validations": s.validations}


def resume_extra(config: TrainConfig, env: DistEnv, s: TrainState, next_epoch: int) -> dict:
    """What last.pt holds beside `checkpoint_extra` so `resume_run` continues exactly (RNG states:
    train/reproducibility.py)."""
    return {
        "optimizer": _state_to_cpu(s.optimizer.state_dict()),
        "scheduler": s.scheduler.state_dict(),
        "scaler": s.scaler.state_dict() if s.use_amp else {},
        "rng": rng_state(),
        "data_order": {"sampler": "DistributedSampler", "seed": config.seed, "next_epoch": next_epoch,
                       "world_size": env.world_size},
    }


def _state_to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _state_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_state_to_cpu(v) for v in obj)
    return obj


def resume_run(config: TrainConfig, env: DistEnv, s: TrainState, out: Path, last_path: Path, best_path: Path,
               console) -> None:
    """Load last.pt into `s` (model, optimiser, schedule, scaler, history, best, RNG states)."""
    from aucues.train.checkpoint import load_checkpoint, save_checkpoint

    saved_model, info = load_checkpoint(last_path)
    _check_resume_config(config, info.get("train_config", {}), last_path)
    s.model.load_state_dict(saved_model.state_dict())
    s.optimizer.load_state_dict(info["optimizer"])
    s.scheduler.load_state_dict(info["scheduler"])
    if info.get("scaler"):
        s.scaler.load_state_dict(info["scaler"])
    s.start_epoch, s.history, s.best = int(info["epoch"]), list(info["history"]), dict(info["best"])
    s.validations = list(info.get("validations", []))
    set_rng_state(info["rng"])
    if env.is_main:
        # best.pt is written before last.pt, so it is never older than what last.pt records; when the
        # best epoch is the one last.pt holds, the model is right here: repair a missing/other best.pt.
        # (a mid-epoch best, best["step"] set, is not last.pt's model: nothing to repair it from)
        if s.best["epoch"] == s.start_epoch and s.best.get("step") is None \
                and _checkpoint_epoch(best_path) != s.start_epoch:
            save_checkpoint(best_path, saved_model, checkpoint_extra(config, s, info.get("val_metrics", {}),
                                                                     s.start_epoch))
            console.print(f"rewrote {best_path.name} from {last_path.name} (epoch {s.start_epoch})")
        write_metrics(out / "metrics.csv", s.history)  # a kill between last.pt and metrics.csv
    del saved_model
    console.print(f"resuming {out} after epoch {s.start_epoch}")
    if s.start_epoch >= config.epochs:
        console.print(f"nothing to do: {s.start_epoch} of {config.epochs} epochs already done")


def _check_resume_config(config: TrainConfig, saved: dict, ckpt: Path) -> None:
    current = config.to_dict()
    diff = [k for k, v in saved.items() if k not in RESUME_FREE_KEYS and current.get(k) != v]
    if diff:
        shown = ", ".join(f"{k} {saved[k]!r} -> {current.get(k)!r}" for k in diff[:4])
        raise AucuesError(f"--resume: the config differs from the run in {ckpt.parent} ({shown}); "
                          f"resume with the saved config or start a new --out")


def _checkpoint_epoch(path: Path):
    """The epoch a checkpoint records, None when missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True).get("epoch"))
    except Exception:
        return None
