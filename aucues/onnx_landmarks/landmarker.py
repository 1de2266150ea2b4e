"""OnnxLandmarker: aucues.landmarks.MediaPipeLandmarker's pipeline on the converted ONNX models.

Same steps and constants as the MediaPipe landmarker (aucues/landmarks.py explains them): the
full-range detector on the image and its tiles plus the short-range detector on the image, merge,
then per face a MESH_CROP-px crop in which the short-range detector, the ROI and the mesh run as
MediaPipe's face mesh solution does (up to 3 faces per crop, the one nearest the centre kept), then
468 -> iBUG-68. The difference is batching: each network runs once per stage over every tile, crop
and face of every image passed to detect_many (one ONNX Runtime call per stage and crop scale).
"""

from __future__ import annotations

import numpy as np

from aucues.errors import AucuesError
from aucues.landmarks import (CROP_SCALES, MESH68_SOURCE, MESH_CROP, MP468_TO_IBUG68, Face, _check_image, _merge,
                              _tiles, _to_ibug68)
from aucues.onnx_landmarks import detection as det
from aucues.onnx_landmarks import roi as roi_mod

MESH_MAX_FACES = 3      # as MediaPipeLandmarker's FaceMesh(max_num_faces=3)
FACE_PRESENCE = 0.5     # the mesh's face flag threshold (MediaPipe's face landmark graph gates at 0.5)


def _cut(box, x, y, s, h, w, tol: float = 2.0) -> bool:
    from aucues.landmarks import MediaPipeLandmarker

    return MediaPipeLandmarker._cut(box, x, y, s, h, w, tol)


class OrtRunner:
    """The three landmark models in local ONNX Runtime sessions, converted on first use. providers:
    ONNX Runtime's provider list, or one per model name (default the CPU;
    aucues.onnx_landmarks.device_bench builds the CUDA and TensorRT ones); `providers_used` says what
    each session really got, since ORT falls back silently to the next provider in the list."""

    def __init__(self, threads: int = 0, cache=None, providers: list | dict | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - a hard dependency
            raise AucuesError(f"onnxruntime is not installed ({e})") from None
        from aucues.onnx_landmarks.models import IO, onnx_path

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        # No busy-waiting worker threads: the landmarker shares its cores with the classifier and other
        # instances (serving), where spinning threads burn the time the others need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sess = {}
        for name in IO:
            try:
                chosen = providers.get(name) if isinstance(providers, dict) else providers
                self._sess[name] = ort.InferenceSession(str(onnx_path(name, cache)), opts,
                                                        providers=chosen or ["CPUExecutionProvider"])
            except AucuesError:
                raise
            except Exception as e:
                raise AucuesError(f"cannot load the ONNX landmark model {name} ({str(e).splitlines()[0]})") from None

    @property
    def providers_used(self) -> dict[str, str]:
        return {name: sess.get_providers()[0] for name, sess in self._sess.items()}

    def __call__(self, model: str, x: np.ndarray) -> list[np.ndarray]:
        sess = self._sess[model]
        return sess.run(None, {sess.get_inputs()[0].name: x})

    def close(self) -> None:
        self._sess = {}


class OnnxLandmarker:
    """Every face of an RGB image with 68 landmarks, largest first; detect_many batches images."""

    source = MESH68_SOURCE  # the same networks and the same 468 -> 68 mapping as MediaPipeLandmarker

    def __init__(self, max_faces: int = 10, min_detection_score: float = 0.5, threads: int = 0,
                 cache=None, runner=None):
        """runner: callable (model name, NHWC float32 batch) -> the model's outputs in aucues.onnx_landmarks
        .models.IO order; default OrtRunner (local ONNX Runtime). The Triton preprocess model passes one
        that sends the batches to the served landmark models (aucues.serve.bls.BlsRunner)."""
        self.max_faces = int(max_faces)
        self.min_detection_score = float(min_detection_score)
        if self.max_faces < 1 or not 0.0 <= self.min_detection_score <= 1.0:
            raise AucuesError(f"max_faces must be >= 1 and min_detection_score in [0, 1], "
                              f"got {max_faces} and {min_detection_score}")
        self._run = runner if runner is not None else OrtRunner(threads=threads, cache=cache)
        self._anchors = {s.model: det.anchors(s) for s in (det.SHORT_RANGE, det.FULL_RANGE)}
        self._closed = False

    # -- detector ----------------------------------------------------------------------------------
    def _detect(self, spec: det.DetectorSpec, jobs: list[tuple[np.ndarray, np.ndarray]], min_score: float):
        """jobs: (image, 2x3 input->image matrix); per job (boxes, keypoints, scores) in image px."""
        if not jobs:
            return []
        x = np.stack([roi_mod.warp(img, m, spec.size) for img, m in jobs]).astype(np.float32)
        x = x / 127.5 - 1.0  # the detectors' [-1, 1] input range
        boxes, scores = self._run(spec.model, x)[:2]
        out = []
        for k, (_, m) in enumerate(jobs):
            b, kp, s = det.decode(boxes[k], scores[k], self._anchors[spec.model], spec.size, min_score)
            b, kp, s = det.weighted_nms(b, kp, s)
            corners = roi_mod.apply(m, b.reshape(-1, 2, 2)).reshape(-1, 4)  # rotation-free: corners stay corners
            out.append((corners, roi_mod.apply(m, kp), s))
        return out

    def _detect_boxes(self, images: list[np.ndarray]) -> list[list[tuple[np.ndarray, float]]]:
        near, full, meta = [], [], []
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            near.append((img, roi_mod.region_matrix(w / 2, h / 2, max(h, w), 0.0, det.SHORT_RANGE.size)))
            for x, y, s in _tiles(h, w):
                if s == 0:  # the whole image, letterboxed into the square input as MediaPipe does
                    m = roi_mod.region_matrix(w / 2, h / 2, max(h, w), 0.0, det.FULL_RANGE.size)
                else:
                    m = roi_mod.region_matrix(x + s / 2, y + s / 2, s, 0.0, det.FULL_RANGE.size)
                full.append((img, m))
                meta.append((i, x, y, s))
        per_image: list[tuple[list, list]] = [([], []) for _ in images]
        for i, (b, _, s) in enumerate(self._detect(det.SHORT_RANGE, near, self.min_detection_score)):
            per_image[i][0].extend(b.astype(np.float32))
            per_image[i][1].extend(s.tolist())
        for (i, x, y, s), (b, _, sc) in zip(meta, self._detect(det.FULL_RANGE, full, self.min_detection_score)):
            h, w = images[i].shape[:2]
            for box, score in zip(b.astype(np.float32), sc):
                if s and _cut(box, x, y, s, h, w):  # partial face at a tile edge (see landmarks.py)
                    continue
                per_image[i][0].append(box)
                per_image[i][1].append(float(score))
        return [[(bx[k], sc[k]) for k in _merge(bx, sc)] for bx, sc in per_image]

    # -- mesh --------------------------------------------------------------------------------------
    def _mesh_faces(self, crops: list[np.ndarray], scale: float) -> list[np.ndarray | None]:
        """Per MESH_CROP-px crop: the mesh (468, 3) in crop px nearest the centre, or None."""
        s = det.SHORT_RANGE.size
        m_det = roi_mod.region_matrix(MESH_CROP / 2, MESH_CROP / 2, MESH_CROP, 0.0, s)
        found = self._detect(det.SHORT_RANGE, [(c, m_det) for c in crops], 0.5)
        inputs, owners, mats = [], [], []
        for k, (boxes, kps, _) in enumerate(found):
            for b, kp in zip(boxes[:MESH_MAX_FACES], kps[:MESH_MAX_FACES]):
                cx, cy, side, rot = roi_mod.mesh_roi(b, kp)
                m = roi_mod.region_matrix(cx, cy, side, rot, roi_mod.MESH_SIZE)
                inputs.append(roi_mod.warp(crops[k], m, roi_mod.MESH_SIZE, replicate=True))
                owners.append(k)
                mats.append(m)
        best: list[np.ndarray | None] = [None] * len(crops)
        best_d = [np.inf] * len(crops)
        if not inputs:
            return best
        x = np.stack(inputs).astype(np.float32) / 255.0  # the mesh's [0, 1] input range
        raw, flag = self._run("face_landmark", x)[:2]
        raw = raw.reshape(len(inputs), 468, 3).astype(np.float64)
        presence = 1.0 / (1.0 + np.exp(-flag.reshape(-1).astype(np.float64)))
        for j, k in enumerate(owners):
            if presence[j] < FACE_PRESENCE:
                continue
            m = mats[j]
            mesh = np.empty((468, 3))
            mesh[:, :2] = roi_mod.apply(m, raw[j, :, :2])
            mesh[:, 2] = raw[j, :, 2] * np.hypot(m[0, 0], m[1, 0])  # z in 192-px units -> crop px
            d = float(np.hypot(*(mesh[list(MP468_TO_IBUG68), :2].mean(0) - MESH_CROP / 2)))
            if d < best_d[k]:
                best[k], best_d[k] = mesh, d
        return [b if b is not None and best_d[k] < 0.5 * MESH_CROP / scale else None
                for k, b in enumerate(best)]  # as MediaPipeLandmarker: a mesh face far from the centre is a neighbour

    def _points(self, images: list[np.ndarray], boxes: list[tuple[int, np.ndarray]]) -> dict[int, np.ndarray]:
        """Per index into `boxes` ((image index, box)): the 68 points, trying each crop scale in turn."""
        import cv2

        result: dict[int, np.ndarray] = {}
        todo = list(range(len(boxes)))
        for scale in CROP_SCALES:
            if not todo:
                break
            crops, mats = [], []
            for j in todo:
                i, box = boxes[j]
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                k = MESH_CROP / (max(box[2] - box[0], box[3] - box[1]) * scale)
                m = np.array([[k, 0, MESH_CROP / 2 - k * cx], [0, k, MESH_CROP / 2 - k * cy]], np.float64)
                interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
                crops.append(cv2.warpAffine(images[i], m, (MESH_CROP, MESH_CROP), flags=interp,
                                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)))
                mats.append(m)
            meshes = self._mesh_faces(crops, scale)
            left = []
            for j, m, mesh in zip(todo, mats, meshes):
                if mesh is None:
                    left.append(j)
                    continue
                mesh[:, :2] -= m[:, 2]
                pts = _to_ibug68(mesh / m[0, 0]).astype(np.float32)
                if np.isfinite(pts).all():
                    result[j] = pts
            todo = left
        return result

    # -- public ------------------------------------------------------------------------------------
    def detect_many(self, images_rgb: list[np.ndarray]) -> list[list[Face]]:
        """detect() for several images, each network run once per stage over all of them."""
        if self._closed:
            raise AucuesError("OnnxLandmarker is closed")
        images = [_check_image(im) for im in images_rgb]
        dets = self._detect_boxes(images)
        flat = [(i, box) for i, d in enumerate(dets) for box, _ in d]
        scores = [score for d in dets for _, score in d]
        pts = self._points(images, flat)
        out: list[list[Face]] = [[] for _ in images]
        for j, (i, box) in enumerate(flat):
            if j in pts:
                out[i].append(Face(box=np.asarray(box, np.float32), points=pts[j], score=float(scores[j])))
        for i, faces in enumerate(out):
            lm_boxes = [np.r_[f.points.min(0), f.points.max(0)] for f in faces]
            faces = [faces[k] for k in _merge(lm_boxes, [f.score for f in faces])]
            faces.sort(key=lambda f: -float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
            out[i] = faces[: self.max_faces]
        return out

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Every face (box, 68 points, detection score), largest first; [] when there is none."""
        return self.detect_many([image_rgb])[0]

    def close(self) -> None:
        if not self._closed and hasattr(self._run, "close"):
            self._run.close()
        self._closed = True

    def __enter__(self) -> "OnnxLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
