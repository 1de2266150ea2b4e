"""The paper's effect, measured on the synthetic AU benchmark (CPU, minutes).

Synthesizes the benchmark, trains the same small backbone twice with the same seed and budget
(CE only vs CE + AU alignment loss), evaluates both on the test split (accuracy, ATT-COS per layer,
CAM-COS of four CAM methods), times a training step of each on the same batch, and writes a JSON
report and (with --doc) docs/au_effect.md.

    .venv/bin/python scripts/bench_au_effect.py --out runs/au_effect --doc docs/au_effect.md

Targets (from the project's issue): AU model layer-5 ATT-COS >= CE-only + 0.2, CAM-COS >= CE-only
+ 0.1, accuracy >= CE-only - 1 point, step time AU / CE-only <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

TARGETS = {"att_cos_5_gain": 0.2, "cam_cos_gain": 0.1, "accuracy_drop_max": 0.01, "step_ratio_max": 1.10}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/au_effect")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--synth-size", type=int, default=64, help="side of the synthesized images")
    p.add_argument("--image-size", type=int, default=48, help="model input side")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--augment", action="store_true",
                   help="the paper's train augmentation (off by default: from scratch on a few hundred "
                        "images it kept both models at chance within this budget, see docs/au_effect.md)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of train held out for model selection (a small one makes selection noisy)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine more threads oversubscribe and slow down)")
    p.add_argument("--au-lambda", type=float, default=9.0)
    p.add_argument("--au-layers", default="5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--step-repeats", type=int, default=6, help="timed steps per loss variant")
    p.add_argument("--doc", default=None, help="also write this markdown report (e.g. docs/au_effect.md)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def time_steps(cfg, repeats: int) -> dict:
    """Seconds per training step, CE-only vs CE + AU loss, on one batch of synthetic faces
    (`aucues bench train`: interleaved rounds so that CPU contention hits both alike; medians)."""
    from aucues.train.bench import run_train_bench

    r = run_train_bench(backbone=cfg.backbone, image_size=cfg.image_size, batch_size=cfg.batch_size,
                        layers=tuple(cfg.au_layers), lam=cfg.au_lambda, runs=repeats, warmup=1,
                        seed=cfg.seed)
    med = {row["variant"]: row["p50_ms"] / 1000.0 for row in r["rows"]}
    return {"batch": cfg.batch_size, "ce_only_s": round(med["ce"], 4), "au_s": round(med["ce+au"], 4),
            "ratio": round(med["ce+au"] / med["ce"], 3)}


def run(args) -> dict:
    import torch

    from aucues.synth import synthesize
    from aucues.train.config import TrainConfig
    from aucues.train.experiment import compare

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    synth_dir = out / "synth"
    t_all = time.time()
    s = synthesize(synth_dir, per_class=args.per_class, seed=args.seed, image_size=args.synth_size,
                   force=True, progress=not args.quiet)
    common = dict(data=str(synth_dir), dataset="synthetic", backbone=args.backbone, large_maps=True,
                  image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  au_lambda=args.au_lambda, au_layers=tuple(int(x) for x in args.au_layers.split(",")),
                  seed=args.seed, num_workers=args.num_workers, val_fraction=args.val_fraction, weights="random",
                  augment=args.augment)
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "settings": {**{k: v for k, v in common.items() if k != "data"}, "au_layers": list(common["au_layers"]),
                           "per_class": args.per_class, "synth_size": args.synth_size,
                           "train_images": s["train"], "test_images": s["test"]},
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform(), "load_avg_start": os.getloadavg()},
              "runs": {}}
    base = TrainConfig(**common, out=str(out)).validate()
    result = compare(base, out, split="test", progress=not args.quiet)
    report["runs"], report["deltas"] = result["runs"], result["deltas"]
    report["step_time"] = time_steps(base, args.step_repeats)
    d = report["deltas"]
    report["targets"] = {
        "att_cos_5": {"goal": f">= +{TARGETS['att_cos_5_gain']}", "met": d["att_cos_5"] >= TARGETS["att_cos_5_gain"]},
        "cam_cos": {"goal": f">= +{TARGETS['cam_cos_gain']}", "met": d["cam_cos"] >= TARGETS["cam_cos_gain"]},
        "accuracy": {"goal": f">= -{TARGETS['accuracy_drop_max'] * 100:.0f} point",
                     "met": d["accuracy"] >= -TARGETS["accuracy_drop_max"]},
        "step_ratio": {"goal": f"<= {TARGETS['step_ratio_max']}",
                       "met": report["step_time"]["ratio"] <= TARGETS["step_ratio_max"]},
    }
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["total_s"] = round(time.time() - t_all, 1)
    return report


def markdown(r: dict) -> str:
    from aucues.train.experiment import markdown_table

    ce, au = r["runs"]["ce_only"]["test"], r["runs"]["au"]["test"]
    st = r["settings"]

    table = markdown_table(ce, au, "metric (test split)")
    t = r["targets"]
    tgt = "\n".join(f"- {k}: goal {v['goal']} -> **{'met' if v['met'] else 'missed'}**" for k, v in t.items())
    s = r["step_time"]
    return f"""# The AU-loss effect on the synthetic benchmark (measured)

Generated by `scripts/bench_au_effect.py`. Command:

    {r['command']}

Setting: synthetic AU benchmark ({st['train_images']} train / {st['test_images']} test images,
{st['synth_size']} px, seed {st['seed']}), {st['backbone']} with large maps at {st['image_size']} px, random
init (no pretrained weights offline), {st['epochs']} epochs, batch {st['batch_size']}, SGD lr {st['lr']} with the
paper's schedule, train augmentation {"as in the paper (§9)" if st.get("augment") else "off"}, {st.get('val_fraction', 0.1):.0%} of train held out for model selection (best val accuracy), AU loss on layers
{st['au_layers']} with lambda {st['au_lambda']}. Both runs use the same seed, data order and budget; only the loss differs.
Machine: {r['machine']['cpus']} CPUs, shared with other work during the run (load average
{r['machine']['load_avg_start'][0]:.1f} at start, {r['machine']['load_avg_end'][0]:.1f} at end), so wall times are indicative.
Total wall time {r['total_s'] / 60:.1f} min (CE-only train {r['runs']['ce_only']['train_s']:.0f} s, AU train
{r['runs']['au']['train_s']:.0f} s).

{table}

Training step time on the same batch of {s['batch']} (median of interleaved steps): CE only {s['ce_only_s']:.3f} s,
CE + AU {s['au_s']:.3f} s, ratio **{s['ratio']:.3f}**.

Targets:
{tgt}
"""


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    report = run(args)
    out = Path(args.out)
    from aucues.io import atomic_write_json

    atomic_write_json(out / "au_effect.json", report)
    md = markdown(report)
    if args.doc:
        from aucues.benchmark import write_markdown_doc

        write_markdown_doc(args.doc, md)
    print(md)
    print(json.dumps({"deltas": report["deltas"], "step_time": report["step_time"],
                      "targets": {k: v["met"] for k, v in report["targets"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
