"""The CE-only vs CE + AU-loss experiment (docs/au_effect.md): the one implementation behind the demo,
`scripts/bench_au_effect.py` and method comparisons.

Both variants of a comparison share one TrainConfig except `au_loss` (same seed, data order, budget),
so any difference in the results comes from the loss alone."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

# (name, au_loss): the two runs of every comparison, in report order
VARIANTS = (("ce_only", False), ("au", True))

# The paper's table columns (docs/method.md §7), read from an `evaluate` result.
METRICS = (
    ("CL (accuracy %)", lambda r: 100.0 * r["accuracy"]),
    ("macro F1 %", lambda r: 100.0 * r["macro_f1"]),
    *((f"ATT-COS layer {l}", lambda r, l=l: r["att_cos"][str(l)]) for l in (5, 4, 3, 2, 1)),
    ("CAM-COS (CAM)", lambda r: r["cam_cos"]),
    ("CAM-COS (GradCAM)", lambda r: r["cam_cos_gradcam"]),
    ("CAM-COS (GradCAM++)", lambda r: r["cam_cos_gradcampp"]),
    ("CAM-COS (LayerCAM)", lambda r: r["cam_cos_layercam"]),
    ("CAM-COS (GradCAM++ as the reference runs it)", lambda r: r["cam_cos_gradcampp_reference"]),
)


def metric_rows(ce: dict, au: dict) -> list[tuple[str, float, float]]:
    """(name, CE-only value, CE + AU value) for every metric both results have."""
    rows = []
    for name, get in METRICS:
        try:
            rows.append((name, get(ce), get(au)))
        except (KeyError, TypeError):
            continue
    return rows


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else (f"{v:.2f}" if abs(v) > 1.5 else f"{v:.3f}")


def change_rows(ce: dict, au: dict) -> list[tuple[str, str, str, str]]:
    """metric_rows formatted for a table: (name, CE-only, CE + AU, signed change)."""
    rows = []
    for name, a, b in metric_rows(ce, au):
        d = None if a is None or b is None else b - a
        rows.append((name, _fmt(a), _fmt(b), ("+" if d and d > 0 else "") + _fmt(d)))
    return rows


def markdown_table(ce: dict, au: dict, title: str = "metric") -> str:
    lines = [f"| {title} | CE only | CE + AU loss | change |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in change_rows(ce, au)]
    return "\n".join(lines)


def deltas(ce: dict, au: dict, layers=(5,)) -> dict:
    """CE + AU minus CE-only for accuracy, ATT-COS of layer 5 and of the AU-loss `layers` (those the
    model has: APViT's only map is layer 1), and every CAM-COS the results share (none without a CAM)."""
    out = {"accuracy": round(au["accuracy"] - ce["accuracy"], 4)}
    for layer in sorted({5, *layers}):
        a, b = ce.get("att_cos", {}).get(str(layer)), au.get("att_cos", {}).get(str(layer))
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out[f"att_cos_{layer}"] = round(b - a, 4)
    for key in sorted(k for k in ce if k.startswith("cam_cos") and k in au):
        if isinstance(ce[key], (int, float)) and isinstance(au[key], (int, float)):
            out[key] = round(au[key] - ce[key], 4)
    return out


def variant_config(config, au: bool, run_dir):
    """The same recipe with the AU loss on or off, writing to `run_dir`."""
    return dataclasses.replace(config, au_loss=au, out=str(run_dir))


def train_variant(config, au: bool, run_dir, progress: bool = True):
    """Train one variant from scratch (stale checkpoints of an earlier run are removed first)."""
    from aucues.train.trainer import train

    run_dir = Path(run_dir)
    for name in ("last.pt", "best.pt"):
        (run_dir / name).unlink(missing_ok=True)
    return train(variant_config(config, au, run_dir).validate(), progress=progress)


def evaluate_variant(checkpoint, config, split: str = "test", plots_dir=None, progress: bool = True) -> dict:
    """`evaluate` of a variant's checkpoint on the recipe's data."""
    from aucues.train.evaluate import evaluate

    return evaluate(checkpoint, config.data, config.dataset, split=split, plots_dir=plots_dir,
                    progress=progress)


def compare(config, out, split: str = "test", progress: bool = True, variants=VARIANTS) -> dict:
    """Train and evaluate every variant of `config` under `out/<name>`; -> runs and deltas."""
    out = Path(out)
    runs = {}
    for name, au in variants:
        t0 = time.time()
        res = train_variant(config, au, out / name, progress)
        train_s = time.time() - t0
        t0 = time.time()
        ev = evaluate_variant(res.best_checkpoint, config, split, out / name / "plots", progress)
        runs[name] = {"train_s": round(train_s, 1), "eval_s": round(time.time() - t0, 1),
                      "best_epoch": res.best_epoch, "history": res.history, split: ev}
    result = {"runs": runs}
    if {"ce_only", "au"} <= set(runs):
        result["deltas"] = deltas(runs["ce_only"][split], runs["au"][split], config.au_layers)
    return result
