"""The demo's results table (like the paper's: without -> with AU loss) and its Markdown report."""

from __future__ import annotations

import os
from pathlib import Path

ROWS = (
    ("CL (accuracy %)", lambda r: 100.0 * r["accuracy"]),
    ("macro F1 %", lambda r: 100.0 * r["macro_f1"]),
    ("ATT-COS layer 5", lambda r: r["att_cos"]["5"]),
    ("ATT-COS layer 4", lambda r: r["att_cos"]["4"]),
    ("CAM-COS (CAM)", lambda r: r["cam_cos"]),
    ("CAM-COS (GradCAM)", lambda r: r["cam_cos_gradcam"]),
    ("CAM-COS (GradCAM++)", lambda r: r["cam_cos_gradcampp"]),
    ("CAM-COS (LayerCAM)", lambda r: r["cam_cos_layercam"]),
)


def table_rows(ce: dict, au: dict) -> list[tuple[str, float | None, float | None]]:
    rows = []
    for name, get in ROWS:
        try:
            a, b = get(ce), get(au)
        except (KeyError, TypeError):
            continue
        rows.append((name, a, b))
    return rows


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else (f"{v:.2f}" if abs(v) > 1.5 else f"{v:.3f}")


def print_table(ce: dict, au: dict, console) -> None:
    from rich.table import Table

    t = Table(title=f"Synthetic AU benchmark, test split ({au.get('n_images', '?')} images)")
    for c in ("metric", "CE only", "CE + AU loss", "change"):
        t.add_column(c, justify="right" if c != "metric" else "left")
    for name, a, b in table_rows(ce, au):
        d = None if a is None or b is None else b - a
        t.add_row(name, _fmt(a), _fmt(b), ("+" if d and d > 0 else "") + _fmt(d))
    console.print(t)


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def write_report(p: dict, ce: dict, au: dict, serve: dict | None, timings: dict, cfg) -> Path:
    from aucues.io import atomic_write_text

    base = p["report"].parent
    lines = ["# aucues demo report", "",
             "The embedded default: a synthetic AU benchmark whose faces carry a class-correlated distractor "
             "outside every AU region. Two models with the same recipe and seed: cross-entropy only, and "
             "cross-entropy plus the AU alignment loss (layer-5 attention pulled toward the AU heatmap).", "",
             "## Results (test split)", "", "| metric | CE only | CE + AU loss | change |", "|---|---:|---:|---:|"]
    for name, a, b in table_rows(ce, au):
        d = None if a is None or b is None else b - a
        lines.append(f"| {name} | {_fmt(a)} | {_fmt(b)} | {('+' if d and d > 0 else '') + _fmt(d)} |")
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
    lines += ["## Steps", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    atomic_write_text(p["report"], "\n".join(lines) + "\n")
    return p["report"]
