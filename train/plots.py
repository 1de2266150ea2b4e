"""Evaluation figures (matplotlib, Agg backend): the confusion matrix, and per-example panels
(image, AU map of the true label, attention of each layer, CAM of the true class)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from aucues.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(conf: np.ndarray, class_names, path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true rows, predicted columns) with counts in the cells."""
    plt = _plt()
    conf = np.asarray(conf)
    rows = conf.sum(1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros(conf.shape, np.float64), where=rows > 0)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 * n + 2, 1.0 * n + 1.2))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{conf[i, j]}\n{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    _save(fig, path)
    return path


def plot_panel(example: dict, class_names, path) -> Path:
    """One row: image | AU map (true label) | attention of layers 1..5 | CAM (true class)."""
    plt = _plt()
    atts = example["attentions"]
    cols = 3 + len(atts)
    fig, axes = plt.subplots(1, cols, figsize=(1.9 * cols, 2.3))
    img = example["image"]
    axes[0].imshow(img)
    axes[0].set_title(f"true {class_names[example['label']]}\npred {class_names[example['pred']]}", fontsize=8)
    if example["au_map"] is not None:
        axes[1].imshow(img)
        axes[1].imshow(example["au_map"], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[1].set_title("AU map", fontsize=8)
    else:
        axes[1].imshow(np.zeros(img.shape[:2]), cmap="gray", vmin=0, vmax=1)
        axes[1].set_title("no AU map", fontsize=8)
    for k, (layer, a) in enumerate(sorted(atts.items())):
        ax = axes[2 + k]
        span = float(a.max() - a.min())
        ax.imshow((a - a.min()) / span if span > 0 else a, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
        ax.set_title(f"attention L{layer}", fontsize=8)
    axes[-1].imshow(img)
    if example["cam"] is not None:
        axes[-1].imshow(example["cam"], cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[-1].set_title("CAM (true class)" if example["cam"] is not None else "no CAM (APViT)", fontsize=8)
    for ax in axes:
        ax.axis("off")
    path = Path(path)
    _save(fig, path)
    return path


def plot_panels(examples: dict[int, list], class_names, out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    paths = []
    for label in sorted(examples):
        for k, ex in enumerate(examples[label]):
            name = f"panel_{class_names[label].lower()}_{k}.png"
            paths.append(plot_panel(ex, class_names, out_dir / name))
    return paths
