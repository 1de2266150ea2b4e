"""Evaluation: classification (accuracy, macro F1, per-class accuracy, confusion matrix) and the
interpretability metrics of docs/method.md §7 on a dataset split.

    evaluate(checkpoint, data, dataset, split="test") -> {"method", "has_cam", "accuracy", "macro_f1",
        "per_class_accuracy", "att_cos": {"1".."5"}, "cam_cos", "cam_cos_gradcam", "cam_cos_gradcampp",
        "cam_cos_layercam", "confusion_matrix", "n_images", "n_skipped"}

A model without a CAM (has_cam False: APViT) gets every cam_cos None: CAM-COS is not applicable.

ATT-COS of layer l and CAM-COS compare the layer attention / the true class's CAM with the AU map
built from the TRUE label at the input size; samples without a valid map (Neutral, no landmarks)
are left out; values are averaged per class, then unweighted over the expression classes that have
samples (the 6 expressions; Neutral and Contempt have no map)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aucues.errors import AucuesError
from aucues.labels import NEUTRAL
from aucues.preprocessing import LAYERS

GRAD_CAMS = ("gradcam", "gradcampp", "gradcampp_reference", "layercam")  # both Grad-CAM++ forms (docs/method.md §6)


# The §7 procedures themselves live in train.metrics (map_cosine, InterpretabilityMeter,
# classification_report) and train.cams (normalize_cam): this module only feeds them.

# ------------------------------------------------------------------------------------------------
# One pass over a loader

@torch.no_grad()
def _forward(model, x, layers, use_amp):
    with torch.autocast(x.device.type, enabled=use_amp):
        out = model(x)
    atts = {l: out.attentions[l].float() for l in layers if l in out.attentions}
    missing = tuple(l for l in layers if l not in atts)
    if missing:  # the model returns fewer layers: read them from its intermediate features
        feats = model.forward_intermediates(x, missing)
        atts.update({l: feats[l].float().mean(1) for l in missing})
    return out.logits.float(), None if out.cam is None else out.cam.float(), atts


def collect(model, loader, device, layers=LAYERS, cam_methods=(), use_amp: bool = False,
            progress: bool = False, examples_per_class: int = 0) -> dict:
    """Run `model` over `loader` (FERDataset with map_at_output=True) and gather every metric."""
    from aucues.train.cams import get_cam, normalize_cam
    from aucues.train.data import SkipLog
    from aucues.train.metrics import InterpretabilityMeter, classification_report, map_cosine

    model.eval()
    has_cam = getattr(model, "has_cam", True)  # APViT: no CAM, so no CAM-COS (own or gradient)
    if not has_cam:
        cam_methods = ()
    names = tuple(model.preprocess.class_names)
    size = (int(model.preprocess.image_size),) * 2
    preds, labels = [], []
    ce_sum = 0.0
    att_meters = {l: InterpretabilityMeter(names) for l in layers}
    cam_meters = {m: InterpretabilityMeter(names) for m in (("cam",) if has_cam else ()) + tuple(cam_methods)}
    examples: dict[int, list] = {}
    skips = SkipLog()
    with _bar(progress, len(loader)) as bar:
        task = bar.add_task("evaluate", total=len(loader))
        for batch in loader:
            skips.update(batch)
            bar.advance(task)
            if batch["n"] == 0:
                continue
            x = batch["image"].to(device)
            y = batch["label"].to(device)
            amap = batch["au_map"].to(device).float()
            valid = batch["valid"].to(device) & (y != NEUTRAL)
            logits, cam, atts = _forward(model, x, layers, use_amp)
            ce_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            pred = logits.argmax(1)
            preds.append(pred.cpu())
            labels.append(y.cpu())
            true_cam = None if cam is None else normalize_cam(cam[torch.arange(len(y), device=device), y], size)
            for l in layers:
                att_meters[l].update(map_cosine(atts[l], amap, attention=True), y, valid)
            if true_cam is not None:
                cam_meters["cam"].update(map_cosine(true_cam, amap), y, valid)
            idx = valid.nonzero(as_tuple=True)[0]
            if idx.numel():
                for m in cam_methods:  # gradient CAMs need a backward pass: valid samples only
                    with get_cam(m)(model, layer=5) as fn:
                        c = fn(x[idx], y[idx])
                    cam_meters[m].update(map_cosine(c, amap[idx]), y[idx])
            if examples_per_class:
                _keep_examples(examples, examples_per_class, batch, pred, atts, true_cam, model)
    n_images = int(sum(len(p) for p in preds))
    report = classification_report(torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long),
                                   torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long), len(names))
    return {"report": report, "ce": ce_sum / max(n_images, 1), "n_images": n_images, "n_skipped": skips.count,
            "att_cos": {l: m.mean() for l, m in att_meters.items()},
            "cam_cos": {m: v.mean() for m, v in cam_meters.items()}, "examples": examples}


def _keep_examples(examples, k, batch, pred, atts, true_cam, model):
    pre = model.preprocess
    for j in range(batch["n"]):
        label = int(batch["label"][j])
        got = examples.setdefault(label, [])
        if len(got) >= k:
            continue
        got.append({
            "image": pre.denormalize(batch["image"][j].cpu().numpy()),
            "au_map": batch["au_map"][j].cpu().numpy() if bool(batch["valid"][j]) else None,
            "attentions": {l: a[j].cpu().numpy() for l, a in atts.items()},
            "cam": None if true_cam is None else true_cam[j].cpu().numpy(),
            "label": label, "pred": int(pred[j]), "index": int(batch["index"][j]),
        })


def _bar(enabled: bool, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True)


def validate(model, loader, device, use_amp: bool = False, progress: bool = False) -> dict:
    """Model selection metrics on the validation split: accuracy, mean CE, layer-5 ATT-COS."""
    r = collect(model, loader, device, layers=(5,), use_amp=use_amp, progress=progress)
    acc = r["report"]["accuracy"]
    return {"accuracy": 0.0 if math.isnan(acc) else acc, "ce": r["ce"], "att_cos_5": r["att_cos"][5],
            "n_images": r["n_images"]}


def _missing(index, split: str) -> int:
    """Listed images of this split whose file does not exist (counted when the index was read)."""
    if split == "all":
        return index.n_missing
    return index.missing_by_split.get(split, 0)


def _selection(info: dict, split: str) -> dict | None:
    """How the checkpoint's model was selected (train/protocol.py); a model selected on the test
    split and scored on it gets optimistic=True (docs/method.md §9)."""
    from aucues.train.protocol import selection_summary

    sel = selection_summary(info)
    if sel is not None:
        sel["optimistic"] = sel.get("select_on") == "test" and split in ("test", "all")
    return sel


def _clean(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return round(float(v), 6)


# ------------------------------------------------------------------------------------------------
# Public entry point

def evaluate(checkpoint, data, dataset: str, split: str = "test", plots_dir=None,
             cam_methods=GRAD_CAMS, batch_size: int = 32, num_workers: int = 0, device: str = "auto",
             examples_per_class: int = 2, progress: bool = True) -> dict:
    """Evaluate a checkpoint on a dataset split; optional confusion-matrix and panel PNGs in plots_dir."""
    from aucues.train.checkpoint import load_checkpoint
    from aucues.train.data import open_dataset
    from aucues.train.distributed import pick_device

    unknown = [m for m in cam_methods if m not in GRAD_CAMS]
    if unknown:
        raise AucuesError(f"unknown CAM method(s) {', '.join(unknown)}; choose among {', '.join(GRAD_CAMS)}")
    if batch_size < 1:
        raise AucuesError(f"batch size must be >= 1, got {batch_size}")
    dev = pick_device(device)
    model, info = load_checkpoint(checkpoint, map_location="cpu")
    model.to(dev)
    pre = model.preprocess
    num_classes = int(model.config.num_classes)
    index = open_dataset(dataset, data, num_classes)
    if tuple(index.class_names) != tuple(pre.class_names):
        raise AucuesError(f"checkpoint classes {list(pre.class_names)} differ from the dataset's "
                          f"{list(index.class_names)}")
    if pre.crop == "five_point" and index.align_template is not None and index.align_template != pre.template:
        # a model scored on another crop than it was trained on measures the crop, not the model
        raise AucuesError(f"{data} was aligned with another template than the checkpoint's (see its "
                          "PreprocessConfig align_template); prepare the data with the model's template")
    tmp = None
    if dataset == "folder" and index.landmark_source == "none":
        # raw photos without a landmark cache: find and frame the faces as this model expects
        import tempfile

        from aucues.train.data.faces import crop_split

        tmp = tempfile.TemporaryDirectory(prefix="aucues-eval-faces-")
        index = crop_split(index, split, pre, tmp.name, progress=progress)
        if not any(index.records.values()):
            tmp.cleanup()
            raise AucuesError(f"no face found in any image of the {split} split of {data} "
                              f"(e.g. {', '.join(index.missing_examples[:3])})")
    try:
        result = _evaluate_index(model, index, dataset, data, split, checkpoint, plots_dir, cam_methods,
                                 batch_size, num_workers, dev, examples_per_class, progress)
    finally:
        if tmp is not None:
            tmp.cleanup()
    result["selection"] = _selection(info, split)
    return result


def _evaluate_index(model, index, dataset, data, split, checkpoint, plots_dir, cam_methods, batch_size,
                    num_workers, dev, examples_per_class, progress) -> dict:
    from torch.utils.data import DataLoader

    from aucues.train.data import FERDataset, build_transform, collate

    pre = model.preprocess
    records = index.split(split)
    ds = FERDataset(records, index.landmarks, build_transform(pre, train=False), "class", pre.codebook,
                    map_at_output=True)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    r = collect(model, loader, dev, LAYERS, tuple(cam_methods), use_amp=dev.type == "cuda", progress=progress,
                examples_per_class=examples_per_class if plots_dir else 0)
    if r["n_images"] == 0:
        raise AucuesError(f"no readable images in the {split} split of {data} ({r['n_skipped']} skipped)")
    rep = r["report"]
    result = {
        "method": model.config.method,  # cam_cos is this method's own CAM (docs/method.md §12)
        "accuracy": _clean(rep["accuracy"]),
        "macro_f1": _clean(rep["macro_f1"]),
        "per_class_accuracy": {n: _clean(v) for n, v in zip(pre.class_names, rep["per_class_accuracy"])},
        "att_cos": {str(l): _clean(v) for l, v in r["att_cos"].items()},
        "has_cam": bool(getattr(model, "has_cam", True)),  # False: CAM-COS not applicable (APViT)
        "cam_cos": _clean(r["cam_cos"].get("cam")),
        **{f"cam_cos_{m}": _clean(r["cam_cos"].get(m)) for m in GRAD_CAMS},
        "confusion_matrix": rep["confusion_matrix"],
        "n_images": int(r["n_images"]),
        "n_skipped": int(r["n_skipped"] + _missing(index, split)),
        "landmarks": index.landmark_source,
    }
    if plots_dir:
        from aucues.train.plots import plot_confusion, plot_panels

        plots_dir = Path(plots_dir)
        plot_confusion(np.array(rep["confusion_matrix"]), pre.class_names, plots_dir / "confusion_matrix.png",
                       title=f"{Path(str(checkpoint)).name} on {dataset} {split}: acc {rep['accuracy']:.3f}")
        plot_panels(r["examples"], pre.class_names, plots_dir)
    return result
