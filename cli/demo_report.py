"""The demo's results table (like the paper's: without -> with AU loss) and its Markdown report."""

from __future__ import annotations

import os
from pathlib import Path

from aucues.train.experiment import change_rows, markdown_table


def print_table(ce: dict, au: dict, console) -> None:
    from rich.table import Table

    t = Table(title=f"Synthetic AU benchmark, test split ({au.get('n_images', '?')} images)")
    for c in ("metric", "CE only", "CE + AU loss", "change"):
        t.add_column(c, justify="right" if c != "metric" else "left")
    for row in change_rows(ce, au):
        t.add_row(*row)
    console.print(t)


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def write_report(p: dict, ce: dict, au: dict, serve: dict | None, timings: dict, cfg, real: dict | None = None) -> Path:
    from aucues.cli.demo_real import report_lines
    from aucues.io import atomic_write_text

    base = p["report"].parent
    lines = ["# aucues demo report", "",
             "The embedded default: a synthetic AU benchmark whose faces carry a class-correlated distractor "
             "outside every AU region. Two models with the same recipe and seed: cross-entropy only, and "
             "cross-entropy plus the AU alignment loss (layer-5 attention pulled toward the AU heatmap).", "",
             "## Results (test split)", "", markdown_table(ce, au)]
    lines += ["", "ATT-COS and CAM-COS: cosine between the layer attention (or CAM of the true class) and the AU "
              "heatmap of the true label, averaged per class over the 6 expressions (Neutral excluded).", ""]
    figs = []
    for which, title in (("ce", "CE only"), ("au", "CE + AU loss")):
        d = p["eval"] / which
        if d.exists():
            for f in sorted(d.glob("*.png"))[:4]:
                figs.append((title, f))
    sample = base / "figures" / "synthetic_samples.png"
    if sample.exists():
        lines += ["## The synthetic benchmark", "", f"![samples]({_rel(sample, base)})", ""]
    if figs:
        lines += ["## Explanations", ""]
        for title, f in figs:
            lines += [f"**{title}** — `{f.name}`", "", f"![{f.stem}]({_rel(f, base)})", ""]
    if serve:
        lines += ["## Serving (Triton)", ""]
        for k in ("server", "predictions", "failures"):
            if k in serve:
                lines.append(f"- {k}: {serve[k]}")
        for f in serve.get("overlays", [])[:6]:
            lines += ["", f"![overlay]({_rel(Path(f), base)})"]
        if serve.get("bench_markdown"):
            lines += ["", "### Serving benchmark", "", serve["bench_markdown"]]
        for f in serve.get("bench_plots", []):
            lines += ["", f"![bench]({_rel(Path(f), base)})"]
        lines.append("")
    lines += report_lines(real, base)  # the real-face model next to the synthetic AU model
    lines += ["## Steps", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    atomic_write_text(p["report"], "\n".join(lines) + "\n")
    return p["report"]
