"""The resumable batch landmarker: every image under a folder into a landmark cache, with progress.

Images are listed by glob or extension (keys relative to the root, forward slashes: the cache's keys,
aucues.landmark_cache). Keys already in the cache are skipped and every image is committed as it is
done, so an interrupted run resumes where it stopped (docs/landmark_cache.md).
"""

from __future__ import annotations

from pathlib import Path

from aucues.errors import AucuesError
from aucues.landmark_cache import open_for_landmarker

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def scan_images(root, extensions=IMAGE_EXTENSIONS, pattern: str | None = None) -> tuple[list[str], int]:
    """(sorted keys of the images under `root`, number of other files ignored). Keys are relative
    with forward slashes, chosen by glob or extension; a dangling symlink with an image name is kept
    (reading it then reports it) rather than dropped silently."""
    root = Path(root)
    if not root.is_dir():
        raise AucuesError(f"{root}: not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    keys, ignored = [], 0
    for p in (root.glob(pattern) if pattern else root.rglob("*")):
        dangling = p.is_symlink() and not p.exists()
        if not (p.is_file() or dangling):
            continue  # folders
        if pattern or p.suffix.lower() in exts:
            keys.append(p.relative_to(root).as_posix())
        else:
            ignored += 1
    return sorted(keys), ignored


def list_images(root, extensions=IMAGE_EXTENSIONS, pattern: str | None = None) -> list[str]:
    """Sorted keys (relative, forward slashes) of the images under `root`, by glob or extension."""
    return scan_images(root, extensions, pattern)[0]


def landmark_dataset(root, cache_path, extensions=IMAGE_EXTENSIONS, pattern: str | None = None,
                     save_every: int = 0, progress: bool = True, landmarker=None,
                     max_faces: int = 10, min_detection_score: float = 0.5, refresh: bool = False) -> dict:
    """Landmark every image under `root` into the cache at `cache_path`; the largest face is kept.

    Resumable: keys already in the cache are skipped. An unreadable image (undecodable, dangling
    symlink, not a regular file) or an image without a face is recorded as missing (None) and counted,
    never raised. Every image is committed as it is done, so a kill loses at most the current one
    (`save_every` is accepted for old callers and ignored). Returns counts: total, skipped (already
    cached), processed (this run), faces, missing (no face), errors (unreadable), ignored (files
    that are not images), error_examples, refreshed (entries of another source cleared, see
    LandmarkCache.adopt_source; without `refresh` such a cache is refused), and cache (the store's path).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from aucues.io import read_image
    from aucues.landmarks import make_landmarker

    root = Path(root)
    keys, ignored = scan_images(root, extensions, pattern)
    # landmarker: None (MediaPipe), a kind name (aucues.landmarks.LANDMARKERS) or a landmarker object
    own = landmarker is None or isinstance(landmarker, str)
    lm = make_landmarker(landmarker or "mediapipe", max_faces, min_detection_score) if own else landmarker
    try:
        cache, refreshed = open_for_landmarker(cache_path, lm, refresh)
    except BaseException:
        if own:
            lm.close()
        raise
    todo = [k for k in keys if k not in cache]
    summary = {"root": str(root), "cache": str(cache.path), "total": len(keys), "skipped": len(keys) - len(todo),
               "processed": 0, "faces": 0, "missing": 0, "errors": 0, "ignored": ignored, "error_examples": [],
               "refreshed": refreshed}
    columns = (TextColumn("landmarks"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("landmarks", total=len(todo))
            for key in todo:
                face = None
                try:
                    faces = lm.detect(read_image(root / key))
                    face = faces[0] if faces else None
                    summary["missing" if face is None else "faces"] += 1
                except (AucuesError, RuntimeError) as e:  # unreadable, too large/small, graph error
                    summary["errors"] += 1
                    if len(summary["error_examples"]) < 10:
                        summary["error_examples"].append(str(e))
                cache.set(key, face)
                summary["processed"] += 1
                bar.advance(task)
        cache.save()  # an empty dataset still gets its (empty) cache file
    finally:
        cache.close()
        if own:
            lm.close()
    return summary
