"""Shared benchmark plumbing for every stage: timed loops with warm-up, percentiles, machine info,
and the JSON / Markdown / PNG outputs. Numbers are only ever compared as ratios within one run
(these machines are shared and noisy)."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Timing:
    name: str
    batch: int
    samples_ms: list[float] = field(repr=False, default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples_ms, 50))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.samples_ms, 90))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples_ms, 99))

    @property
    def throughput(self) -> float:
        """Items per second at the median latency."""
        return 1000.0 * self.batch / self.p50 if self.p50 > 0 else float("nan")

    def summary(self) -> dict:
        return {"name": self.name, "batch": self.batch, "runs": len(self.samples_ms), "p50_ms": round(self.p50, 3),
                "p90_ms": round(self.p90, 3), "p99_ms": round(self.p99, 3),
                "throughput_per_s": round(self.throughput, 2), **self.extra}


def time_call(fn: Callable[[], object], name: str, batch: int = 1, warmup: int = 3, runs: int = 20,
              min_seconds: float = 0.0, max_seconds: float = 60.0) -> Timing:
    """Call fn warmup times untimed, then at least `runs` times (and at least min_seconds), at most
    max_seconds; per-call wall-clock milliseconds."""
    for _ in range(warmup):
        fn()
    t = Timing(name, batch)
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t.samples_ms.append((time.perf_counter() - t0) * 1000.0)
        elapsed = time.perf_counter() - start
        if (len(t.samples_ms) >= runs and elapsed >= min_seconds) or elapsed >= max_seconds:
            break
    return t


def interleaved(fns: dict[str, Callable[[], object]], batch: int = 1, warmup: int = 3, runs: int = 20) -> dict[str, Timing]:
    """Time several variants round-robin, so drift on a shared machine hits them all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: Timing(k, batch) for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].samples_ms.append((time.perf_counter() - t0) * 1000.0)
    return out


def paired_ratio(a: list[float], b: list[float]) -> dict:
    """Median (and quartiles) of the per-round ratios a_i / b_i of an interleaved run: the two calls of
    a round ran seconds apart, so load that comes and goes on a shared machine cancels out, where a
    ratio of the two p50s mixes quiet and busy moments differently for each variant."""
    r = np.asarray(a, np.float64) / np.asarray(b, np.float64)
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return {"paired": round(float(q50), 3), "paired_q25": round(float(q25), 3), "paired_q75": round(float(q75), 3)}


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpu": cpu_model()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        info["gpu"] = None
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
    except Exception:  # noqa: BLE001
        pass
    return info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    cols = columns or list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def line_plot(path: str | os.PathLike, series: dict[str, tuple[list, list]], xlabel: str, ylabel: str,
              title: str, logx: bool = False) -> None:
    """One PNG with a line per series {label: (xs, ys)} (matplotlib Agg), written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aucues.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_results(out_dir: str | os.PathLike, name: str, payload: dict, markdown: str) -> dict[str, str]:
    """`<name>.json` and `<name>.md` in out_dir, atomically."""
    from aucues.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    atomic_write_json(out / f"{name}.json", {"machine": machine_info(), **payload})
    atomic_write_text(out / f"{name}.md", markdown)
    return {"json": str(out / f"{name}.json"), "markdown": str(out / f"{name}.md")}


ANALYSIS_MARKER = "<!-- analysis -->"


def write_markdown_doc(path: str | os.PathLike, generated: str) -> None:
    """Replace a generated report in docs/ and keep the hand-written analysis below its marker."""
    from aucues.io import atomic_write_text

    doc = Path(path)
    old = doc.read_text() if doc.exists() else ""
    tail = old[old.index(ANALYSIS_MARKER):] if ANALYSIS_MARKER in old else ""
    atomic_write_text(doc, generated + ("\n" + tail if tail else ""))
