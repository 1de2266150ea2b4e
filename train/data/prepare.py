"""`aucues data prepare`: faces aligned and landmarked once, so training builds AU maps on the fly.

RAF-DB (docs/method.md §10): for every image of basic/EmoLabel/list_patition_label.txt, the original
`basic/Image/original/<stem>.jpg` is cropped with `basic/Annotation/boundingbox/<stem>_boxes.txt`
enlarged by 30% (the whole image when there is no box file), MediaPipe finds the 68 landmarks
(MediaPipeLandmarker; the face nearest the annotation box), align_face warps the ORIGINAL photo to
size x size with the model's template, and the result goes to
`basic/Image/aucues_aligned/<stem>_aligned.jpg` (RAF-DB's own files are never touched). The landmarks
of the ALIGNED image (the detected points moved by the same similarity transform) go to the cache
`basic/aucues_landmarks68.sqlite`, keyed by the aligned image's path from the root.

No face: the un-enlarged box crop resized to size x size with Lanczos is written (as the reference
code falls back to the box crop) and the cache records null (CE only for that image). An unreadable original is recorded
as null and counted; no aligned image is written for it. Resumable: images whose key is in the
cache and whose aligned file exists are skipped; every image is committed to the cache as it is done
(`save_every` is accepted for old callers and ignored). A bad image (unreadable, too small for the
detector, an absurd box) is skipped, counted in `errors` and reported in `error_examples`.

Folder / AffectNet datasets come already cropped: `prepare folder|affectnet` only fills
`<root>/aucues_landmarks68.sqlite` for their images (aucues.landmark_batch.landmark_dataset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aucues.errors import AucuesError
from aucues.preprocessing import DEFAULT_IMAGE_SIZE
from aucues.rafdb_layout import AUCUES_ALIGNED_DIR as OUT_DIR, BOX_DIR, ORIGINAL_DIR, aligned_key

# Which alignment template the crops of OUT_DIR were made with (AlignTemplate.config_fields()):
# training copies it into the model's PreprocessConfig, so the model is served on the same crop.
PREPARE_META = "basic/aucues_prepare.json"
BOX_ENLARGE = 1.3


def read_box(path: Path) -> np.ndarray | None:
    """RAF-DB's `<stem>_boxes.txt`: 'x0 y0 x1 y1' -> float array, None if absent or malformed."""
    if not path.is_file():
        return None
    try:
        vals = [float(v) for v in path.read_text().split()[:4]]
    except (OSError, ValueError):
        return None
    if len(vals) != 4 or vals[2] <= vals[0] or vals[3] <= vals[1]:
        return None
    return np.array(vals, np.float64)


def _box_origin(box: np.ndarray, enlarge: float) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the box grown `enlarge` times about its centre, in whole pixels."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = (box[2] - box[0]) * enlarge, (box[3] - box[1]) * enlarge
    return int(round(cx - w / 2)), int(round(cy - h / 2)), max(int(round(w)), 1), max(int(round(h)), 1)


def crop_box(image: np.ndarray, box: np.ndarray | None, enlarge: float = BOX_ENLARGE) -> np.ndarray:
    """The box grown `enlarge` times about its centre; parts outside the image are black."""
    import cv2

    if box is None:
        return image
    x0, y0, out_w, out_h = _box_origin(box, enlarge)
    m = np.array([[1, 0, -x0], [0, 1, -y0]], np.float64)
    return cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def nearest_face(faces: list, crop_shape) -> int:
    """Index of the detection whose box centre is nearest the crop's centre, i.e. nearest RAF-DB's
    annotation box (the crop is centred on it): the reference's choice (docs/method.md §10), not the
    largest face, which can be a bystander's."""
    c = np.array([crop_shape[1] / 2, crop_shape[0] / 2])
    d = [float(np.hypot(*((f.box[:2] + f.box[2:]) / 2 - c))) for f in faces]
    return int(np.argmin(d))


def align_from_original(image: np.ndarray, box: np.ndarray | None, crop_points: np.ndarray, size: int, template):
    """§10 warps the ORIGINAL image: landmarks found on the enlarged crop are moved back to the
    photo's frame, so the aligned face has real pixels wherever the photo has them."""
    from aucues.align import align_face

    offset = np.zeros(2) if box is None else np.array(_box_origin(box, BOX_ENLARGE)[:2], np.float64)
    return align_face(image, np.asarray(crop_points, np.float64) + offset, size, template)


def fallback_crop(image: np.ndarray, box: np.ndarray | None, size: int) -> np.ndarray:
    """No face found: the un-enlarged annotation box (the whole photo without one) resized with
    Lanczos, as the reference does (§10); such images get the classification loss only."""
    import cv2

    return cv2.resize(crop_box(image, box, enlarge=1.0), (size, size), interpolation=cv2.INTER_LANCZOS4)


def _stems(root: Path) -> list[str]:
    from aucues.rafdb_layout import LABEL_FILE, read_label_file

    labels = root / LABEL_FILE
    if labels.is_file():
        return [Path(name).stem for name, _ in read_label_file(labels)]
    originals = root / ORIGINAL_DIR
    if not originals.is_dir():
        raise AucuesError(f"{root}: not a RAF-DB folder (missing {LABEL_FILE} and {ORIGINAL_DIR}/)")
    return sorted(p.stem for p in originals.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _original(root: Path, stem: str) -> Path:
    for ext in (".jpg", ".jpeg", ".png"):
        p = root / ORIGINAL_DIR / f"{stem}{ext}"
        if p.exists():
            return p
    return root / ORIGINAL_DIR / f"{stem}.jpg"


def _check_template(root: Path, template):
    """The template to align with; written to PREPARE_META, or checked against what is there."""
    from aucues.align import AlignTemplate
    from aucues.io import atomic_write_json

    if template is None:
        from aucues.preprocessing import PreprocessConfig

        template = PreprocessConfig().template
    if not isinstance(template, AlignTemplate):
        raise AucuesError(f"template must be an AlignTemplate, got {type(template).__name__}")
    meta = root / PREPARE_META
    recorded = read_prepare_template(root)
    if recorded is not None and recorded != template:
        raise AucuesError(f"{root}: its aligned crops were made with another alignment template "
                          f"({meta}); remove {OUT_DIR}/, {meta.name} and the landmark cache to redo them")
    if recorded is None:
        if (root / OUT_DIR).is_dir() and any((root / OUT_DIR).iterdir()):
            # crops written before the template was recorded: aucues's earlier template
            from aucues.align import LEGACY_TEMPLATE

            if template != LEGACY_TEMPLATE:
                raise AucuesError(f"{root}: {OUT_DIR}/ holds crops made with aucues's earlier alignment "
                                  f"template; remove it and the landmark cache to redo them with the current one")
        atomic_write_json(meta, {"format": "aucues-prepare/1", **template.config_fields()})
    return template


def read_prepare_template(root):
    """The AlignTemplate recorded by prepare_rafdb under `root`, or None."""
    import json

    from aucues.align import AlignTemplate

    meta = Path(root) / PREPARE_META
    if not meta.is_file():
        return None
    try:
        return AlignTemplate.from_config_fields(json.loads(meta.read_text(encoding="utf-8")))
    except ValueError:
        raise AucuesError(f"{meta}: not valid JSON") from None


def prepare_rafdb(root, size: int = DEFAULT_IMAGE_SIZE, limit: int | None = None, save_every: int = 0,
                  progress: bool = True, landmarker=None, template=None, refresh: bool = False) -> dict:
    """Crop, landmark and align RAF-DB's originals (see the module doc). Returns counts.
    template: the AlignTemplate (default PreprocessConfig()'s); recorded in PREPARE_META. A folder
    prepared with another template is refused (its crops would mix two frames). A cache whose points
    another landmark source made (an older 468 -> 68 mapping) is refused unless `refresh`, which
    does every image again (LandmarkCache.adopt_source)."""
    import cv2
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from aucues.io import read_image, write_image
    from aucues.landmark_cache import open_for_landmarker
    from aucues.landmarks import Face
    from aucues.train.data.rafdb import RAF_CACHE

    root = Path(root)
    if not root.is_dir():
        raise AucuesError(f"{root}: no such folder")
    if not (root / ORIGINAL_DIR).is_dir():
        raise AucuesError(f"{root}: no {ORIGINAL_DIR}/ to prepare from (RAF-DB's original images)")
    size = int(size)
    if size < 32:
        raise AucuesError(f"aligned size must be >= 32 px, got {size}")
    template = _check_template(root, template)
    stems = _stems(root)[: limit or None]
    own = landmarker is None
    if own:
        from aucues.landmarks import MediaPipeLandmarker

        landmarker = MediaPipeLandmarker(max_faces=3)
    try:
        cache, refreshed = open_for_landmarker(root / RAF_CACHE, landmarker, refresh)
    except BaseException:
        if own:
            landmarker.close()
        raise
    key_of = {s: aligned_key(OUT_DIR, s) for s in stems}
    todo = [s for s in stems if not (key_of[s] in cache and (root / key_of[s]).exists())]
    summary = {"root": str(root), "cache": str(cache.path), "out_dir": str(root / OUT_DIR), "total": len(stems),
               "skipped": len(stems) - len(todo), "processed": 0, "faces": 0, "missing": 0, "errors": 0,
               "error_examples": [], "refreshed": refreshed}
    columns = (TextColumn("prepare rafdb"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("prepare", total=len(todo))
            for stem in todo:
                key = key_of[stem]
                try:
                    image = read_image(_original(root, stem))
                    raf_box = read_box(root / BOX_DIR / f"{stem}_boxes.txt")
                    crop = crop_box(image, raf_box)
                    faces = landmarker.detect(crop)
                    if faces:
                        best = faces[nearest_face(faces, crop.shape)]
                        al = align_from_original(image, raf_box, best.points, size, template)
                        pts = al.points.astype(np.float32)
                        box = np.r_[pts.min(0), pts.max(0)].astype(np.float32)
                        out_image, face = al.image, Face(box=box, points=pts, score=float(best.score))
                    else:
                        out_image, face = fallback_crop(image, raf_box, size), None
                except (AucuesError, RuntimeError, ValueError, cv2.error) as e:
                    # A bad image (missing, undecodable, too small for the detector, an absurd box, a
                    # MediaPipe failure) is skipped, counted and reported, never fatal: recorded as no
                    # landmarks and given no aligned file, so the reader counts it as missing.
                    cache.set(key, None)
                    summary["errors"] += 1
                    if len(summary["error_examples"]) < 10:
                        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                        summary["error_examples"].append(msg if stem in msg else f"{stem}: {msg}")
                else:
                    write_image(root / key, out_image)
                    cache.set(key, face)
                    summary["missing" if face is None else "faces"] += 1
                summary["processed"] += 1
                bar.advance(task)
    finally:
        cache.close()  # each image was committed as it was done: an interrupted run resumes after it
        if own:
            landmarker.close()
    return summary


def prepare_landmarks(dataset: str, root, progress: bool = True, landmarker=None, refresh: bool = False) -> dict:
    """Folder / AffectNet: the landmark cache `<root>/aucues_landmarks68.sqlite` of their images."""
    from aucues.landmark_batch import landmark_dataset
    from aucues.train.data.base import CACHE_NAME

    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        root = root.parent
    if not root.is_dir():
        raise AucuesError(f"{root}: no such folder")
    pattern = "*_set/images/*" if dataset == "affectnet" else None
    return landmark_dataset(root, root / CACHE_NAME, pattern=pattern, progress=progress, landmarker=landmarker,
                            refresh=refresh)


def prepare(dataset: str, root, size: int = DEFAULT_IMAGE_SIZE, limit: int | None = None, progress: bool = True,
            refresh: bool = False) -> dict:
    if dataset == "rafdb":
        return prepare_rafdb(root, size=size, limit=limit, progress=progress, refresh=refresh)
    if dataset in ("affectnet", "folder"):
        return prepare_landmarks(dataset, root, progress=progress, refresh=refresh)
    raise AucuesError(f"cannot prepare '{dataset}'; choose one of: rafdb, affectnet, folder "
                      f"(the synthetic benchmark is written ready by `aucues data synth`)")
