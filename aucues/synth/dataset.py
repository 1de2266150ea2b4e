"""`synthesize`: the synthetic AU benchmark written in RAF-DB's layout (ARCHITECTURE.md)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from aucues.align import AlignTemplate
from aucues.codebook import VARIANTS
from aucues.errors import AucuesError
from aucues.rafdb_layout import LABEL_FILE, RAF_ALIGNED_DIR, aligned_key
from aucues.io import atomic_write_json, atomic_write_text
from aucues.labels import CLASS_NAMES, INDEX_TO_RAFDB, NUM_CLASSES
from aucues.landmark_cache import LandmarkCache, remove_cache
from aucues.landmarks import Face
from aucues.synth.render import DISTRACTOR_KINDS
from aucues.synth.sample import render_sample

META_FORMAT = "aucues-synth/1"
META_NAME = "synth_meta.json"
LABELS = LABEL_FILE          # the synthetic benchmark is written in RAF-DB's layout
IMAGE_DIR = RAF_ALIGNED_DIR
CACHE = "basic/aucues_landmarks68.sqlite"
JPEG_QUALITY = 95
SYNTH_SOURCE = "aucues.synth ground truth"   # the landmark cache's recorded source (aucues.landmark_cache)
MIN_SIZE, MAX_SIZE = 32, 1024


def image_key(name: str) -> str:
    """'train_00001.jpg' -> 'basic/Image/aligned/train_00001_aligned.jpg' (the cache key)."""
    return aligned_key(IMAGE_DIR, name)


def sample_name(split: str, index: int) -> str:
    # RAF-DB numbers train images with 5 digits and test images with 4, from 1.
    return f"train_{index + 1:05d}.jpg" if split == "train" else f"test_{index + 1:04d}.jpg"


def is_synth_output(out_dir) -> bool:
    meta = Path(out_dir) / META_NAME
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("format") == META_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_image_file(path: Path, data: bytes) -> None:
    """Atomic for readers (temp file + rename) but without a per-file fsync, which costs ~1-5 ms an
    image on a busy disk: images are regenerable, and synth_meta.json (fsynced, written last with
    "complete": true) is the marker of a finished dataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_share(name: str, v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise AucuesError(f"{name} must be a number in [0, 1], got {v!r}") from None
    if not 0.0 <= v <= 1.0:
        raise AucuesError(f"{name} must be in [0, 1], got {v}")
    return v


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise AucuesError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not is_synth_output(out):
            raise AucuesError(f"{out}: not empty and not a previous synth output; choose an empty or new directory")
        if not force:
            raise AucuesError(f"{out}: holds a previous synth output; pass --force to overwrite it")
        # Only what synthesize writes is removed: other files a user put there stay.
        shutil.rmtree(out / IMAGE_DIR, ignore_errors=True)
        for rel in (LABELS, META_NAME):
            (out / rel).unlink(missing_ok=True)
        remove_cache(out / CACHE)  # with its WAL side files and an older output's JSON cache
    out.mkdir(parents=True, exist_ok=True)


def _plan(split: str, n_per_class: int, share: float, seed: int, distractors: bool) -> list[dict]:
    """Labels (balanced, shuffled) and distractor classes of one split: exactly round(share * n)
    samples carry their true class's distractor, the rest a random other class's."""
    rng = np.random.default_rng([int(seed), 7919, 0 if split == "train" else 1])
    labels = rng.permutation(np.repeat(np.arange(NUM_CLASSES), n_per_class))
    n = len(labels)
    true_flags = np.zeros(n, bool)
    true_flags[rng.permutation(n)[: int(round(share * n))]] = True
    others = rng.integers(1, NUM_CLASSES, n)  # offset to a different class
    plan = []
    for i, (y, t, o) in enumerate(zip(labels, true_flags, others)):
        d = (int(y) if t else int((y + o) % NUM_CLASSES)) if distractors else None
        plan.append({"split": split, "index": i, "label": int(y), "distractor_class": d})
    return plan


def synthesize(out_dir, per_class: int = 200, seed: int = 0, image_size: int = 128,
               distractor_share: float = 0.9, test_share: float = 0.25,
               test_distractor_share: float | None = None, distractors: bool = True,
               variant: str = "paper", force: bool = False, progress: bool = True,
               template: AlignTemplate | None = None) -> dict:
    """Write the synthetic AU benchmark under `out_dir` (RAF-DB layout) and return a summary.

    per_class: images per class over both splits (round(per_class * test_share) go to test).
    distractor_share: share of train images whose distractor encodes the true class (the rest
    encode another class); test_distractor_share: the same for test (default: as train).
    template: the alignment template the faces are framed in (default: PreprocessConfig()'s, the
    crop a model trained on this data gets); recorded in synth_meta.json, from where training copies
    it into the model's PreprocessConfig.
    The bytes depend only on the options and the seed."""
    if isinstance(per_class, bool) or int(per_class) != per_class or per_class < 1:
        raise AucuesError(f"per_class must be an integer >= 1, got {per_class}")
    if isinstance(image_size, bool) or int(image_size) != image_size or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise AucuesError(f"image_size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {image_size}")
    share = _check_share("distractor_share", distractor_share)
    t_share = share if test_distractor_share is None else _check_share("test_distractor_share", test_distractor_share)
    test_frac = _check_share("test_share", test_share)
    if variant not in VARIANTS:
        raise AucuesError(f"unknown codebook variant '{variant}'; choose one of: {', '.join(VARIANTS)}")
    per_class, image_size, seed = int(per_class), int(image_size), int(seed)
    if template is None:
        from aucues.preprocessing import PreprocessConfig

        template = PreprocessConfig().template
    if not isinstance(template, AlignTemplate):
        raise AucuesError(f"template must be an AlignTemplate, got {type(template).__name__}")
    n_test = int(round(per_class * test_frac))
    n_train = per_class - n_test
    out = Path(out_dir)
    _prepare_out(out, force)

    params = {"per_class": per_class, "image_size": image_size, "distractor_share": share,
              "test_share": test_frac, "test_distractor_share": t_share, "distractors": bool(distractors),
              "variant": variant, "align": template.config_fields()}
    # Written first (complete: false) so an interrupted run is still recognised as synth output.
    atomic_write_json(out / META_NAME, {"format": META_FORMAT, "complete": False, "seed": seed, "params": params})
    plan = _plan("train", n_train, share, seed, distractors) + _plan("test", n_test, t_share, seed, distractors)

    cache = LandmarkCache(out / CACHE)
    cache.set_source(SYNTH_SOURCE)
    samples, lines = [], []
    t0 = time.perf_counter()
    for spec in _progress(plan, progress):
        s = render_sample(seed, spec["split"], spec["index"], spec["label"], spec["distractor_class"], image_size, variant,
                          template)
        name = sample_name(spec["split"], spec["index"])
        key = image_key(name)
        ok, enc = cv2.imencode(".jpg", cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # pragma: no cover - cv2 always encodes uint8 RGB
            raise AucuesError(f"{key}: cannot encode JPEG")
        _write_image_file(out / key, enc.tobytes())
        cache.set(key, Face(box=s.box, points=s.points, score=1.0))
        lines.append(f"{name} {INDEX_TO_RAFDB[spec['label']]}")
        d = s.distractor
        samples.append({
            "name": name, "image": key, "split": spec["split"], "label": spec["label"],
            "class": CLASS_NAMES[spec["label"]],
            "distractor_class": None if d is None else d["class"],
            "distractor_true": None if d is None else d["class"] == spec["label"],
            "distractor_box": None if d is None else d["box"],
            "distractor_corner": None if d is None else d["corner"],
        })
    seconds = time.perf_counter() - t0
    atomic_write_text(out / LABELS, "\n".join(lines) + "\n")
    cache.close()

    counts = {sp: {c: sum(1 for s in samples if s["split"] == sp and s["class"] == c) for c in CLASS_NAMES}
              for sp in ("train", "test")}
    observed = {}
    for sp in ("train", "test"):
        flags = [s["distractor_true"] for s in samples if s["split"] == sp and s["distractor_true"] is not None]
        observed[sp] = round(sum(flags) / len(flags), 4) if flags else None
    meta = {
        "format": META_FORMAT, "complete": True, "seed": seed, "params": params,
        "class_names": list(CLASS_NAMES), "counts": counts,
        "distractor": {"kinds": [{"class": CLASS_NAMES[i], "shape": k, "color": list(c)}
                                 for i, (k, c) in enumerate(DISTRACTOR_KINDS)],
                       "observed_true_share": observed},
        "samples": samples,
    }
    atomic_write_json(out / META_NAME, meta)
    return {
        "out_dir": str(out), "seed": seed, "image_size": image_size, "images": len(samples),
        "train": n_train * NUM_CLASSES, "test": n_test * NUM_CLASSES, "counts": counts,
        "distractor_true_share": observed, "seconds": round(seconds, 3),
        "images_per_s": round(len(samples) / seconds, 1) if seconds > 0 else None,
    }


def _progress(items: list, show: bool):
    if not show:
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("synthesizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task("synth", total=len(items))
        for it in items:
            yield it
            bar.advance(task)
