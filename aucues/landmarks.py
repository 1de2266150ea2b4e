"""Faces and their 68 iBUG landmarks from MediaPipe 0.10.21's offline solutions.

Pipeline per image (ENVIRONMENT.md explains why):
1. Face detection with the *full-range* BlazeFace model on the whole image and, for large images, on
   overlapping square tiles (a pyramid 512, 1024, ... px). The detector sees a 192x192 input, so a
   100 px face in a 1280 px photo shrinks to ~15 px and is missed; on a 512 px tile it stays ~38 px.
   The full-range model misses faces that fill the frame (aligned crops, RAF-DB's aligned images),
   so the short-range model also runs once on the whole image.
2. Overlapping detections (tiles overlap, scales repeat) are merged by IoU / containment.
3. For each detection, face mesh (static_image_mode) runs on an enlarged square crop around it,
   resampled to MESH_CROP px (small faces are upscaled). The mesh's own short-range detector then
   sees one large face; the mesh face nearest the crop centre is kept, which also rejects the
   detector's false positives (no mesh face -> no Face).
4. The 468 mesh points go back to image pixels and are mapped to iBUG-68 by their definitions
   (aucues.mesh_to_ibug68: the jaw is the visible face outline, brows their upper edge, ...); should
   that ever fail, the fixed index map MP468_TO_IBUG68 is used, so no face MediaPipe finds is lost.

The MediaPipe graphs are built once per MediaPipeLandmarker and reused; mediapipe is imported lazily.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from aucues.errors import AucuesError

# ENVIRONMENT.md's single-index 468 -> iBUG-68 map: the fallback of aucues.mesh_to_ibug68 (which
# halves the jaw's distance to dlib's points and cuts the brows' by a third; docs/au_maps.md). The jaw
# is its least exact part: fixed vertices cannot follow the outline of a turned face.
MP468_TO_IBUG68: tuple[int, ...] = (
    # jaw 0-16
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356,
    # right brow 17-21, left brow 22-26
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30, nostrils 31-35
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # right eye 36-41, left eye 42-47
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48-59
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    # inner lips 60-67
    78, 82, 13, 312, 308, 317, 14, 87,
)
assert len(MP468_TO_IBUG68) == 68

TILE_MIN = 512        # smallest detection tile (px); tiles double up to the image size
MESH_CROP = 384       # side of the square crop face mesh sees (px)
CROP_SCALES = (2.0, 1.5)  # crop side / detection-box side; the tighter one is a retry
MERGE_IOU = 0.3       # detections (and final faces) overlapping more than this are one face


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stderr_muted(active: bool = True):
    """Silence native (C++) writes to fd 2 for a moment.

    MediaPipe's graphs print TFLite/absl start-up chatter ("Created TensorFlow Lite XNNPACK delegate",
    "Feedback manager requires ...", "Using NORM_RECT without IMAGE_DIMENSIONS ...") straight to fd 2
    while they are built and on their first face. Users would see it around the CLI's one-line
    errors, so it is muted until the first face; AUCUES_MEDIAPIPE_LOGS=1 shows it.
    """
    if not active or os.environ.get("AUCUES_MEDIAPIPE_LOGS") == "1":
        yield
        return
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded/odd hosts): nothing to mute
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


@dataclass
class Face:
    box: np.ndarray      # (4,) float32 x0, y0, x1, y1 in image pixels
    points: np.ndarray   # (68, 2) float32 iBUG-68 (x, y) in image pixels
    score: float


def _iou(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(IoU, intersection / smaller area) of two x0,y0,x1,y1 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    aa = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    ab = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = aa + ab - inter
    return (inter / union if union > 0 else 0.0), (inter / min(aa, ab) if min(aa, ab) > 0 else 0.0)


def _merge(boxes: list[np.ndarray], scores: list[float], iou: float = MERGE_IOU) -> list[int]:
    """Greedy NMS by score; a box mostly inside a kept one (containment > 0.7) is a duplicate too."""
    keep: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: -scores[k]):
        if all(max(_iou(boxes[i], boxes[j])[0] / iou, _iou(boxes[i], boxes[j])[1] / 0.7) < 1.0 for j in keep):
            keep.append(i)
    return keep


def _tiles(h: int, w: int) -> list[tuple[int, int, int]]:
    """(x, y, side) of the whole image plus overlapping square tiles (stride side/2) of a pyramid."""
    out = [(0, 0, 0)]  # side 0 = the whole image
    side = TILE_MIN
    while side * 1.25 < max(h, w):
        s = min(side, h, w)
        step = max(1, s // 2)
        ys = list(range(0, max(h - s, 0) + 1, step))
        xs = list(range(0, max(w - s, 0) + 1, step))
        if ys[-1] != h - s:
            ys.append(h - s)
        if xs[-1] != w - s:
            xs.append(w - s)
        out += [(x, y, s) for y in ys for x in xs]
        side *= 2
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise AucuesError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape} "
                          "(decode files with aucues.io.read_image)")
    if min(image.shape[:2]) < 16:
        raise AucuesError(f"image too small for face detection: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def _to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """68 iBUG points of a (468, 3) mesh in image px; the fixed map if the outline cannot be built."""
    from aucues.mesh_to_ibug68 import ibug68_from_mesh

    try:
        pts = ibug68_from_mesh(mesh)
        if pts.shape == (68, 2) and np.isfinite(pts).all():
            return pts
    except Exception:  # a degenerate mesh (no outline contour): keep the face with the fixed map
        pass
    return mesh[list(MP468_TO_IBUG68), :2]


# What made a set of 68 points: recorded in landmark caches, so that points from an older 468 -> 68
# mapping (before the pose-aware jaw, brow and lid resampling of aucues.mesh_to_ibug68) or from
# another landmarker are never mixed silently with today's. Bump the /N when the mapping changes.
MESH68_SOURCE = "mediapipe-face-mesh -> ibug68/2"


class MediaPipeLandmarker:
    """Every face of an RGB image with 68 landmarks, largest first. Reusable; close() when done."""

    source = MESH68_SOURCE

    def __init__(self, max_faces: int = 10, min_detection_score: float = 0.5):
        try:
            import mediapipe as mp
        except ImportError as e:  # pragma: no cover - mediapipe is a hard dependency
            raise AucuesError(f"mediapipe is not installed ({e}); run `make setup`") from None
        self.max_faces = int(max_faces)
        self.min_detection_score = float(min_detection_score)
        if self.max_faces < 1 or not 0.0 <= self.min_detection_score <= 1.0:
            raise AucuesError(f"max_faces must be >= 1 and min_detection_score in [0, 1], "
                              f"got {max_faces} and {min_detection_score}")
        self._muted = True  # until the first face: see _native_stderr_muted
        with _native_stderr_muted():
            self._build(mp)
            # Graph start opens the TFLite interpreters on worker threads, which log after __init__
            # would return; one process() call on a blank image waits until every calculator is open.
            blank = np.zeros((64, 64, 3), np.uint8)
            for graph in (self._detector, self._near_detector, self._mesh):
                graph.process(blank)
        self._closed = False

    def _build(self, mp) -> None:
        fd = mp.solutions.face_detection.FaceDetection
        # model_selection=1: full-range model, finds small faces (on tiles); it misses faces that fill
        # the frame (an aligned crop), which the short-range model (0) finds: both run on the image.
        self._detector = fd(min_detection_confidence=self.min_detection_score, model_selection=1)
        self._near_detector = fd(min_detection_confidence=self.min_detection_score, model_selection=0)
        # Up to 3 mesh faces per crop so that a neighbour's face cannot hide the one we want.
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=3, refine_landmarks=False, min_detection_confidence=0.5)

    # -- detection -------------------------------------------------------------------------------
    def _detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        h, w = image.shape[:2]
        boxes, scores = [], []
        runs = [(self._near_detector, 0, 0, 0)] + [(self._detector, *t) for t in _tiles(h, w)]
        for detector, x, y, s in runs:
            crop = image if s == 0 else np.ascontiguousarray(image[y:y + s, x:x + s])
            ch, cw = crop.shape[:2]
            for d in detector.process(crop).detections or []:
                b = d.location_data.relative_bounding_box
                x0, y0 = x + b.xmin * cw, y + b.ymin * ch
                box = np.array([x0, y0, x0 + b.width * cw, y0 + b.height * ch], np.float32)
                # Detections cut by a tile edge are partial faces; the whole image or a shifted tile
                # holds the full one (tiles overlap by half).
                if s and (self._cut(box, x, y, s, h, w)):
                    continue
                boxes.append(box)
                scores.append(float(d.score[0]))
        return [(boxes[i], scores[i]) for i in _merge(boxes, scores)]

    @staticmethod
    def _cut(box, x, y, s, h, w, tol: float = 2.0) -> bool:
        """True when the box touches a tile edge that is not also an image edge."""
        return ((box[0] <= x + tol and x > 0) or (box[1] <= y + tol and y > 0)
                or (box[2] >= x + s - tol and x + s < w) or (box[3] >= y + s - tol and y + s < h))

    # -- mesh on a crop --------------------------------------------------------------------------
    def _mesh_points(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        import cv2

        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1])
        for scale in CROP_SCALES:
            crop_side = side * scale
            k = MESH_CROP / crop_side  # image px -> crop px (upscales small faces)
            m = np.array([[k, 0, MESH_CROP / 2 - k * cx], [0, k, MESH_CROP / 2 - k * cy]], np.float64)
            interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
            crop = cv2.warpAffine(image, m, (MESH_CROP, MESH_CROP), flags=interp,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            res = self._mesh.process(crop)
            best, best_d = None, None
            for lm in res.multi_face_landmarks or []:
                # x, y, z in crop px (MediaPipe's z has roughly the scale of x; camera side < 0). The
                # mapping uses x, y; z travels along so that the mesh stays a 3D shape (tests turn it).
                mesh = np.array([(p.x, p.y, p.z) for p in lm.landmark], np.float64) * MESH_CROP
                d = float(np.hypot(*(mesh[list(MP468_TO_IBUG68), :2].mean(0) - MESH_CROP / 2)))
                if best_d is None or d < best_d:
                    best, best_d = mesh, d
            # The face we want is centred in the crop; a mesh face far from the centre is a neighbour.
            if best is not None and best_d < 0.5 * MESH_CROP / scale:
                best[:, :2] -= m[:, 2]
                return _to_ibug68(best / k).astype(np.float32)
        return None

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Every face (box, 68 points, detection score), largest first; [] when there is none."""
        if self._closed:
            raise AucuesError("MediaPipeLandmarker is closed")
        image = _check_image(image_rgb)
        faces: list[Face] = []
        with _native_stderr_muted(self._muted):
            for box, score in self._detect_boxes(image):
                pts = self._mesh_points(image, box)
                if pts is not None and np.isfinite(pts).all():
                    faces.append(Face(box=box.astype(np.float32), points=pts, score=score))
        if faces:
            self._muted = False
        # Two detections may land on one face (a tile and the full image disagreeing): keep one.
        lm_boxes = [np.r_[f.points.min(0), f.points.max(0)] for f in faces]
        faces = [faces[i] for i in _merge(lm_boxes, [f.score for f in faces])]
        faces.sort(key=lambda f: -float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
        return faces[: self.max_faces]

    def close(self) -> None:
        if not self._closed:
            self._detector.close()
            self._near_detector.close()
            self._mesh.close()
            self._closed = True

    def __enter__(self) -> "MediaPipeLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # graphs hold native threads; free them even if close() was forgotten
        try:
            self.close()
        except Exception:
            pass


LANDMARKERS = ("mediapipe", "onnx")


def make_landmarker(kind: str = "mediapipe", max_faces: int = 10, min_detection_score: float = 0.5):
    """The landmarker named `kind`: "mediapipe" (MediaPipeLandmarker, the reference) or "onnx"
    (aucues.onnx_landmarks.OnnxLandmarker: the same pipeline on the converted models, batched)."""
    if kind == "mediapipe":
        return MediaPipeLandmarker(max_faces=max_faces, min_detection_score=min_detection_score)
    if kind == "onnx":
        from aucues.onnx_landmarks.landmarker import OnnxLandmarker

        return OnnxLandmarker(max_faces=max_faces, min_detection_score=min_detection_score)
    raise AucuesError(f"unknown landmarker {kind!r}; choose one of {', '.join(LANDMARKERS)}")
