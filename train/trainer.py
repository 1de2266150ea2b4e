"""The training loop: `train(TrainConfig) -> TrainResult` (the CLI only parses flags into the config).

Run folder: config.yaml (resolved config), metrics.csv (one row per epoch), last.pt (everything a
resume needs) and best.pt (the model with the best validation accuracy; ties -> lower val CE).

Reproducibility: data order comes from a DistributedSampler seeded with (seed, epoch) (world size 1
without torchrun), augmentations from per-sample generators seeded with (seed, epoch, index), and
the global RNGs are reseeded with (seed, epoch, rank) at the start of every epoch. So a run resumed
from last.pt after a kill reproduces the uninterrupted run exactly (CPU, same num_workers); the RNG
states are saved in last.pt and restored as well.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.config import TrainConfig, config_from_dict
from aucues.train.distributed import (DistEnv, all_reduce_sum, barrier, broadcast_object, cleanup,
                               init_distributed, unwrap, wrap_model)
from aucues.train.methods import get_method

log = logging.getLogger("aucues.train")

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_ce", "train_align", "val_accuracy", "val_ce",
                  "val_att_cos_5", "time_s", "n_skipped")
# Keys that may differ between the original run and its resume (everything else must match).
RESUME_FREE_KEYS = ("epochs", "num_workers", "stop_after_epoch", "resume", "device", "out", "data")


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
# RNG

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": _py_state_to_list(random.getstate()),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def _py_state_to_list(s):
    return [s[0], list(s[1]), s[2]]


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 7919 + epoch * 104729 + rank * 15485863) % (2 ** 31)


# ------------------------------------------------------------------------------------------------
# Setup

def build_data(config: TrainConfig, preprocess: PreprocessConfig | None = None):
    """-> (index, train FERDataset, val FERDataset | None). Validation (train/protocol.py): the
    dataset's own `val` split when it has one, else a stratified seeded hold-out of `val_fraction` of
    train; the test split only with select_on: test (the reference's protocol)."""
    from aucues.train.data import FERDataset, build_transform, open_dataset
    from aucues.train.protocol import selection_records

    index = open_dataset(config.dataset, config.data, config.num_classes)
    train_recs = list(index.split("train"))
    if config.limit_train:
        train_recs = train_recs[: config.limit_train]
    train_recs, val_recs = selection_records(config, index, train_recs)
    if not train_recs:
        raise AucuesError(f"{config.data}: no training images left")
    if preprocess is not None and tuple(preprocess.class_names) != tuple(index.class_names):
        raise AucuesError(f"--init: the model's classes {list(preprocess.class_names)} differ from the "
                          f"dataset's {list(index.class_names)}")
    if preprocess is None:
        preprocess = make_preprocess(config, index.class_names, index.align_template)
    elif index.align_template is not None and preprocess.crop == "five_point":
        # --init: the model is trained on, and so served on, the data's crop
        preprocess = preprocess.with_template(index.align_template)
    train_tf = build_transform(preprocess, train=config.augment)
    train_ds = FERDataset(train_recs, index.landmarks, train_tf, config.map_kind, config.codebook, config.seed)
    val_ds = None
    if val_recs:
        val_ds = FERDataset(val_recs, index.landmarks, build_transform(preprocess, train=False),
                            "class", config.codebook, config.seed, map_at_output=True)
    return index, train_ds, val_ds


def make_preprocess(config: TrainConfig, class_names, template=None) -> PreprocessConfig:
    """template: the data's AlignTemplate (DatasetIndex.align_template); the model is served on the
    crop it was trained on. None (unknown): the default template."""
    pre = PreprocessConfig(image_size=config.image_size, class_names=tuple(class_names), codebook=config.codebook)
    return pre if template is None else pre.with_template(template)


def build_fer_model(config: TrainConfig, preprocess: PreprocessConfig):
    from aucues.train.models import ModelConfig, build_model

    if config.init:  # fine-tuning from a checkpoint: its weights (train/init_from.py)
        from aucues.train.init_from import init_model

        return init_model(config, preprocess)

    mc = ModelConfig(backbone=config.backbone, num_classes=config.num_classes, large_maps=config.large_maps,
                     weights=config.weights or "random", method=config.method,
                     method_options=config.method_options or {})
    return build_model(mc, preprocess)


def build_optimizer(model, config: TrainConfig):
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    # one schedule: TrainConfig.lr_at (the scheduler multiplies the base lr by this factor)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: config.lr_at(e) / config.lr)
    return opt, sched


def _state_to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _state_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_state_to_cpu(v) for v in obj)
    return obj


# ------------------------------------------------------------------------------------------------
# Run folder

def write_metrics(path: Path, history: list[dict]) -> None:
    from aucues.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _check_resume_config(config: TrainConfig, saved: dict, ckpt: Path) -> None:
    current = config.to_dict()
    diff = [k for k, v in saved.items() if k not in RESUME_FREE_KEYS and current.get(k) != v]
    if diff:
        shown = ", ".join(f"{k} {saved[k]!r} -> {current.get(k)!r}" for k in diff[:4])
        raise AucuesError(f"--resume: the config differs from the run in {ckpt.parent} ({shown}); "
                          f"resume with the saved config or start a new --out")


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

    _check_start(config, env, out, last_path)
    if env.is_main and out.is_dir():
        for p in remove_stale_temporaries(out):
            console.print(f"removed {p.name} (left by an interrupted write)")
    seed_everything(config.seed)
    from aucues.train.init_from import init_preprocess

    index, train_ds, val_ds = build_data(config, init_preprocess(config))
    s = _build_state(config, env, train_ds)
    if config.resume:
        _resume(config, env, s, out, last_path, best_path, console)
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


@dataclass
class _State:
    """What the loop mutates: model, optimiser, schedule, AMP scaler, loss, history and best so far."""
    model: object
    optimizer: object
    scheduler: object
    scaler: object
    criterion: object
    use_amp: bool
    start_epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": 0, "accuracy": None, "ce": None})
    validations: list = field(default_factory=list)   # every validation (epoch, step, accuracy...)
    selection: str = ""                                # what selects the model (train/protocol.py)


def _check_start(config: TrainConfig, env: DistEnv, out: Path, last_path: Path) -> None:
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


def _build_state(config: TrainConfig, env: DistEnv, train_ds) -> _State:
    from aucues.train.loss import AUAlignmentLoss

    preprocess = train_ds.transform.preprocess
    model = build_fer_model(config, preprocess).to(env.device)
    optimizer, scheduler = build_optimizer(model, config)
    use_amp = config.amp and env.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = AUAlignmentLoss(config.au_layers, config.au_lambda, config.random_avg_p, enabled=config.au_loss)
    return _State(model, optimizer, scheduler, scaler, criterion, use_amp)


_RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "config.yaml", "selection.json")


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


def _resume(config: TrainConfig, env: DistEnv, s: _State, out: Path, last_path: Path, best_path: Path,
            console) -> None:
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
            save_checkpoint(best_path, saved_model, _common_extra(config, s, info.get("val_metrics", {}),
                                                                  s.start_epoch))
            console.print(f"rewrote {best_path.name} from {last_path.name} (epoch {s.start_epoch})")
        write_metrics(out / "metrics.csv", s.history)  # a kill between last.pt and metrics.csv
    del saved_model
    console.print(f"resuming {out} after epoch {s.start_epoch}")
    if s.start_epoch >= config.epochs:
        console.print(f"nothing to do: {s.start_epoch} of {config.epochs} epochs already done")


def _checkpoint_epoch(path: Path):
    """The epoch a checkpoint records, None when missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True).get("epoch"))
    except Exception:
        return None


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


def _train_epoch(config: TrainConfig, env: DistEnv, s: _State, ddp_model, loader, skips, epoch: int,
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


def _common_extra(config: TrainConfig, s: _State, val_metrics: dict, epoch: int) -> dict:
    return {"epoch": epoch, "train_config": config.to_dict(), "history": s.history, "best": s.best,
            "val_metrics": val_metrics, "validations": s.validations}


def _finish_epoch(config: TrainConfig, env: DistEnv, s: _State, ddp_model, val_loader, row: dict, t0: float,
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
    extra_common = _common_extra(config, s, {k: row[k] for k in ("val_accuracy", "val_ce", "val_att_cos_5")},
                                 row["epoch"])
    if improved:
        save_checkpoint(best_path, unwrap(ddp_model), extra_common)
    save_checkpoint(last_path, unwrap(ddp_model), {
        **extra_common,
        "optimizer": _state_to_cpu(s.optimizer.state_dict()),
        "scheduler": s.scheduler.state_dict(),
        "scaler": s.scaler.state_dict() if s.use_amp else {},
        "rng": rng_state(),
        "data_order": {"sampler": "DistributedSampler", "seed": config.seed, "next_epoch": row["epoch"],
                       "world_size": env.world_size},
    })
    write_metrics(out / "metrics.csv", s.history)
    from aucues.train.protocol import write_selection

    write_selection(out / "selection.json", config, s.selection, s.best, s.validations)
    console.print(_epoch_line(row, config.epochs, improved))


def _validate_mid_epoch(config: TrainConfig, env: DistEnv, s: _State, ddp_model, val_loader, epoch: int,
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
        save_checkpoint(best_path, unwrap(ddp_model), _common_extra(
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
