"""`aucues bench train`: the cost of the AU guidance in one training step.

One model, one batch (synthetic faces with their real landmarks -> real AU maps, aucues.synth), one
optimiser; two variants timed round-robin (aucues.benchmark.interleaved):
    ce     AUAlignmentLoss(enabled=False): cross-entropy only
    ce+au  AUAlignmentLoss(enabled=True): CE + lambda * (1 - cos(attention, AU map))
A step = zero_grad + forward + loss + backward + optimiser step. Both variants run the same forward
(the model always returns its attentions), so the difference is the alignment term and its backward."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from aucues.errors import AucuesError

Progress = Callable[[str], None]


def synthetic_batch(batch_size: int, image_size: int, seed: int = 0):
    """(images (N,3,S,S) normalised, labels (N,), AU maps (N,S,S), valid (N,)) from aucues.synth faces:
    labels cycle through every class (Neutral gets an invalid map, as in training)."""
    import numpy as np
    import torch

    from aucues.au_maps import au_map
    from aucues.preprocessing import PreprocessConfig
    from aucues.synth.sample import render_sample

    pre = PreprocessConfig(image_size=image_size)
    imgs, labels, maps, valid = [], [], [], []
    for i in range(batch_size):
        label = i % pre.num_classes
        s = render_sample(seed, "train", i, label, None, size=image_size)
        m, ok = au_map(s.points, label, image_size, kind="class")
        imgs.append(pre.normalize(s.image))
        labels.append(label)
        maps.append(m)
        valid.append(ok)
    return (torch.from_numpy(np.stack(imgs)), torch.tensor(labels), torch.from_numpy(np.stack(maps)),
            torch.tensor(valid))


def run_train_bench(*, backbone: str = "resnet18", image_size: int = 112, batch_size: int = 16,
                    layers: tuple[int, ...] = (5,), lam: float = 9.0, random_avg_p: float = 1.0,
                    runs: int = 20, warmup: int = 2, threads: int = 0, seed: int = 0,
                    device: str = "cpu", amp: bool = False, progress: Progress | None = None) -> dict:
    """device "cuda" + amp: bf16 autocast (no loss scaler needed), as a GPU training run would use."""
    import contextlib

    import numpy as np
    import torch

    from aucues.benchmark import interleaved, paired_ratio
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.loss import AUAlignmentLoss
    from aucues.train.models import ModelConfig, build_model

    step = progress or (lambda _m: None)
    if batch_size < 1 or runs < 1 or warmup < 0 or threads < 0:
        raise AucuesError("batch size and runs must be >= 1, warmup and threads >= 0")
    if device not in ("cpu", "cuda"):
        raise AucuesError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise AucuesError("--device cuda: PyTorch sees no CUDA device here")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    step(f"building {backbone} at {image_size} px")
    cfg = ModelConfig(backbone=backbone, weights="random", attention_layers=tuple(sorted(set(layers))))
    model = build_model(cfg, PreprocessConfig(image_size=image_size)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    step(f"rendering a batch of {batch_size} synthetic faces and their AU maps")
    x, y, maps, valid = (t.to(device) for t in synthetic_batch(batch_size, image_size, seed))
    cast = (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    losses = {"ce": AUAlignmentLoss(layers, lam, random_avg_p, enabled=False),
              "ce+au": AUAlignmentLoss(layers, lam, random_avg_p, enabled=True)}
    last: dict[str, dict] = {}

    def make(name: str):
        loss_fn = losses[name]

        def train_step():
            opt.zero_grad(set_to_none=True)
            with cast():
                parts = loss_fn(model(x), y, maps, valid)
            parts.total.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()  # time the step, not its launch
            last[name] = {k: float(getattr(parts, k).detach()) for k in ("total", "ce", "align")}

        return train_step

    step(f"{runs} interleaved rounds: CE-only vs CE + AU alignment")
    res = interleaved({n: make(n) for n in losses}, batch=batch_size, warmup=warmup, runs=runs)
    rows = [{**t.summary(), "variant": n, "loss": last[n]} for n, t in res.items()]
    ratio = res["ce+au"].p50 / res["ce"].p50
    # per-round ratios: the two steps of a round ran back to back, so load spikes from other processes
    # on a shared machine hit both (the p50s of each variant can fall in different moments)
    return {
        "benchmark": "train",
        "config": {"backbone": backbone, "image_size": image_size, "batch_size": batch_size, "layers": list(layers),
                   "lambda": lam, "random_avg_p": random_avg_p, "runs": runs, "warmup": warmup,
                   "optimizer": "SGD momentum 0.9", "valid_maps": int(valid.sum()), "device": device,
                   "amp": "bf16 autocast" if amp else None},
        "threads": torch.get_num_threads(),
        "load_avg": list(os.getloadavg()),
        "rows": rows,
        "ratios": [{"ratio": "CE + AU step / CE-only step",
                    **paired_ratio(res["ce+au"].samples_ms, res["ce"].samples_ms), "p50_ratio": round(ratio, 3)}],
        "samples": {n: [round(v, 2) for v in t.samples_ms] for n, t in res.items()},
    }


def write_train_results(payload: dict, out_dir: str | Path) -> dict[str, str]:
    from aucues.benchmark import line_plot, markdown_table, write_results

    out = Path(out_dir)
    c = payload["config"]
    md = f"# aucues bench train\n\n{c['backbone']} {c['image_size']} px, batch {c['batch_size']}, AU layers " \
         f"{c['layers']}, lambda {c['lambda']}, torch threads {payload['threads']}, load average " \
         f"{', '.join(f'{v:.2f}' for v in payload['load_avg'])}\n\n"
    md += markdown_table(payload["rows"], ["variant", "batch", "runs", "p50_ms", "p90_ms", "p99_ms",
                                           "throughput_per_s"])
    md += "\n" + markdown_table(payload["ratios"], ["ratio", "paired", "paired_q25", "paired_q75", "p50_ratio"])
    md += "\npaired = median of the per-round ratios (both steps of a round ran back to back).\n"
    paths = write_results(out, "train", payload, md)
    # Step time of every timed round in order: drift on the shared machine shows as both lines moving.
    series = {name: (list(range(1, len(s) + 1)), s) for name, s in payload["samples"].items()}
    line_plot(out / "train_step.png", series, "interleaved round", "step time (ms)",
              "Training step: CE-only vs CE + AU")
    paths["plot"] = str(out / "train_step.png")
    return paths
