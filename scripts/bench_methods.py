"""CE-only vs CE + AU loss for each CAM method on the synthetic AU benchmark (CPU).

Synthesizes the benchmark once, then runs the CE-vs-AU experiment of train/experiment.py (`compare`,
the one behind scripts/bench_au_effect.py and the demo) once per method with the same seed, data,
budget and settings, and writes OUT/methods.json and (with --doc) a table like the paper's Table 1
(CL, CAM-COS of the method's own CAM, ATT-COS of layer 5).

    .venv/bin/python scripts/bench_methods.py --out runs/methods --doc docs/methods.md
    .venv/bin/python scripts/bench_methods.py --render runs/methods/methods.json --doc docs/methods.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

METHODS = ("cam", "wildcat", "acol", "prm", "adl", "cutmix")
# The transformers are architectures (their method pins the backbone): they run at
# --transformer-image-size (16-px patches need more than 48 px), on their own AU layers.
TRANSFORMERS = ("tscam", "apvit")
AU_LAYERS = {"apvit": (1,)}   # APViT's only spatial map is its IR-50 map, "layer 1" (docs/method.md §12)
HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/methods")
    p.add_argument("--methods", default=",".join(METHODS), help="comma list among " + ", ".join(METHODS))
    p.add_argument("--per-class", type=int, default=80)
    p.add_argument("--synth-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--transformer-image-size", type=int, default=64,
                   help="input size of tscam / apvit (DeiT-S: 4x4 patch tokens at 64 px)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--au-lambda", type=float, default=9.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--acol-hidden", type=int, default=256,
                   help="ACoL head width (the paper's is 1024; smaller keeps a CPU run short)")
    p.add_argument("--render", default=None, help="only re-render the table from this methods.json")
    p.add_argument("--doc", default=None, help="also write this markdown report (e.g. docs/methods.md)")
    p.add_argument("--append", action="store_true",
                   help="keep the other methods of OUT/methods.json (same settings) and add/replace these")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def run(args) -> dict:
    import torch

    from aucues.io import atomic_write_json
    from aucues.synth import synthesize
    from aucues.train.config import TrainConfig
    from aucues.train.experiment import compare
    from aucues.train.methods import available_methods

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {', '.join(unknown)}; choose among {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.time()
    s = synthesize(out / "synth", per_class=args.per_class, seed=args.seed, image_size=args.synth_size,
                   force=True, progress=not args.quiet)
    common = dict(data=str(out / "synth"), dataset="synthetic", backbone=args.backbone, large_maps=True,
                  image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  au_lambda=args.au_lambda, au_layers=(5,), seed=args.seed, num_workers=args.num_workers,
                  val_fraction=args.val_fraction, weights="random", augment=False)
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "settings": {**{k: v for k, v in common.items() if k != "data"}, "au_layers": [5],
                           "per_class": args.per_class, "synth_size": args.synth_size,
                           "train_images": s["train"], "test_images": s["test"]},
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "load_avg_start": os.getloadavg()},
              "methods": {}}
    previous = out / "methods.json"
    if args.append and previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("settings") != report["settings"]:
            raise SystemExit(f"error: --append: {previous} was made with other settings")
        report["methods"] = {k: v for k, v in old["methods"].items() if k not in methods}
        report["command"] = old["command"] + "  &&  " + report["command"]
        t0 -= old.get("total_s", 0)
    for m in methods:
        opts = {"hidden": args.acol_hidden} if m == "acol" else {}
        if m == "apvit":  # keep the reference's share of the IR-50 map, 160 of (112 / 8)^2 = 196 tokens
            opts = {"k": max(1, round(160 / 196 * (args.transformer_image_size // 8) ** 2))}
        own = dict(common)
        if m in TRANSFORMERS:
            own.update(backbone=None, image_size=args.transformer_image_size, au_layers=AU_LAYERS.get(m, (5,)))
        cfg = TrainConfig(**own, method=m, method_options=opts, out=str(out / m)).validate()
        t = time.time()
        r = compare(cfg, out / m, split="test", progress=not args.quiet)
        report["methods"][m] = {"method_options": cfg.method_options, "runs": r["runs"], "deltas": r["deltas"],
                                "total_s": round(time.time() - t, 1), "backbone": cfg.backbone,
                                "image_size": cfg.image_size, "au_layers": list(cfg.au_layers)}
        atomic_write_json(out / "methods.json", report)  # partial results survive a kill
        print(f"{m}: {json.dumps(r['deltas'])} ({time.time() - t:.0f} s)", flush=True)
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["total_s"] = round(time.time() - t0, 1)
    return report


def markdown(r: dict) -> str:
    def f(v, pct=False):
        return "n/a" if v is None else (f"{100 * v:.2f}" if pct else f"{v:.3f}")

    lines = ["| method | input | CL % (CE -> CE+AU) | CAM-COS (own CAM) | ATT-COS (AU layer) | gains? |",
             "|---|---|---|---|---|---|"]
    for m, x in r["methods"].items():
        ce, au, d = x["runs"]["ce_only"]["test"], x["runs"]["au"]["test"], x["deltas"]
        layer = str((x.get("au_layers") or [5])[0])
        att = f"att_cos_{layer}"
        gains = [name for name, key in (("CL", "accuracy"), ("CAM-COS", "cam_cos"), ("ATT-COS", att))
                 if (d.get(key) or 0) > 0]
        cam = (f"{f(ce.get('cam_cos'))} -> {f(au.get('cam_cos'))} ({d['cam_cos']:+.3f})" if "cam_cos" in d
               else "no CAM")
        where = f"{x.get('backbone', '')} {x.get('image_size', '')} px".strip()
        lines.append(f"| {m} | {where} | {f(ce['accuracy'], True)} -> {f(au['accuracy'], True)} "
                     f"({100 * d['accuracy']:+.2f}) | {cam} "
                     f"| L{layer}: {f(ce['att_cos'].get(layer))} -> {f(au['att_cos'].get(layer))} ({d.get(att, 0):+.3f}) "
                     f"| {', '.join(gains) or 'none'} |")
    grad = ["| method | GradCAM | GradCAM++ | LayerCAM |", "|---|---|---|---|"]
    for m, x in r["methods"].items():
        ce, au = x["runs"]["ce_only"]["test"], x["runs"]["au"]["test"]
        if ce.get("cam_cos_gradcam") is None:  # no CAM (APViT): no gradient CAMs either
            continue
        grad.append(f"| {m} | " + " | ".join(f"{f(ce.get(k))} -> {f(au.get(k))}" for k in
                                             ("cam_cos_gradcam", "cam_cos_gradcampp", "cam_cos_layercam")) + " |")
    first = next(iter(r["methods"].values()))
    st = r.get("settings") or first["settings"]
    opts = "; ".join(f"{m}: {x.get('method_options', x.get('settings', {}).get('method_options')) or '-'}"
                     for m, x in r["methods"].items())
    tf = [m for m in r["methods"] if m in TRANSFORMERS]
    tf_note = (f"\nThe transformers ({', '.join(tf)}) are their own networks (column input), random init, same "
               f"data, budget and optimiser; each aligns its own AU layer (column ATT-COS: APViT's IR-50 map is "
               f"layer 1) and APViT keeps 160/196 of its tokens (k scaled to the smaller map).") if tf else ""
    return f"""# CAM methods with and without the AU loss (synthetic benchmark, measured)

Generated by `scripts/bench_methods.py` (the CE-vs-AU experiment of `train/experiment.py`, the one
behind `scripts/bench_au_effect.py`, once per method). Command:

    {r['command']}

Setting: synthetic AU benchmark ({st['train_images']} train / {st['test_images']} test images, {st['synth_size']} px,
seed {st['seed']}), {st['backbone']} with large maps at {st['image_size']} px, random init, {st['epochs']} epochs,
batch {st['batch_size']}, SGD lr {st['lr']}, {st['val_fraction']:.0%} of train held out for model selection, AU loss
on layers {st['au_layers']} with lambda {st['au_lambda']}. Within a method both runs share seed, data order and
budget; only the loss differs. Method options: {opts}.{tf_note}
Total wall time {r.get('total_s', sum(x.get('total_s', 0) for x in r['methods'].values())) / 60:.1f} min on a 2-core CPU shared with other work.

Test split, CE only -> CE + AU loss (change), like the paper's Table 1 (docs/method.md §8):

{chr(10).join(lines)}

CAM-COS of the gradient CAMs computed on each method's model (CE only -> CE + AU):

{chr(10).join(grad)}
"""


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE.parent))
    args = parse_args(argv)
    from aucues.io import atomic_write_json

    if args.render:
        report = json.loads(Path(args.render).read_text())
    else:
        report = run(args)
        atomic_write_json(Path(args.out) / "methods.json", report)
    md = markdown(report)
    if args.doc:
        from aucues.benchmark import write_markdown_doc

        write_markdown_doc(args.doc, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
