"""The serving pipeline in-process: encoded bytes -> face -> ONNX Runtime -> label + explanations.

The three stages are the logic of the Triton Python models (model_repository/*/1/model.py import
them) and `Pipeline` chains them in one process (tests compare the server with it; benchmarks use it).
Only aucues, numpy, OpenCV and onnxruntime are needed here: no torch."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aucues.errors import AucuesError, NoFaceError
from aucues.io import MAX_PIXELS
from aucues.serve.spec import NUM_LANDMARKS, ModelSpec, spec_from_onnx

# Encoded images larger than this are refused before decoding (a 50 MP JPEG is ~15-25 MB).
MAX_BYTES = 64 * 1024 * 1024
SUPPORTED_FORMATS = "JPEG, PNG, BMP, WebP"
# Bounded work per request (issue 13). The cost of one image is decode + face search, and both grow
# with its pixels, not its bytes: a 160 KB all-grey 7000x7000 PNG took 5.3 s to decode and 24 s of
# preprocess in all (docs/reliability.md). So:
# - JPEGs may declare up to aucues.io.MAX_PIXELS (50 MP): libjpeg decodes big ones at 1/2..1/8.
#   PNG, BMP and WebP have no reduced decode: at most 4096x4096 worth of pixels (~1 s to decode).
MAX_PIXELS_FULL_DECODE = 4096 * 4096
# - The face search (a tile pyramid, aucues/landmarks.py) runs on at most DETECT_MAX_SIDE px on the
#   long side: the image is shrunk (INTER_AREA) first and the face box scaled back. 2048 px keeps a
#   face of 1/40 of the image width above the detector's reach on a 512 px tile, and bounds the
#   tiles to ~60 detector runs (~1 s on the 2-core machine).
DETECT_MAX_SIDE = 2048


# ---------------------------------------------------------------------------------------------------
# Input checks: cheap, before any decoding

def sniff_image(buf) -> tuple[str, int, int]:
    """(format, width, height) from the header actually present (aucues.io.peek_size: every JPEG SOF,
    PNG IHDR, WebP, BMP). Raises AucuesError for anything that is not JPEG, PNG, BMP or WebP."""
    from aucues.io import peek_size

    fmt, w, h = peek_size(buf)
    if not fmt:
        raise AucuesError(f"not an image in a supported format ({SUPPORTED_FORMATS})")
    return fmt, w, h


def check_encoded(data, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Validate one encoded image given as bytes or a uint8 array; returns the flat uint8 buffer."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(data, np.uint8)
    else:
        arr = np.asarray(data)
        if arr.dtype != np.uint8:
            raise AucuesError(f"image_bytes must be UINT8 encoded image bytes, got {arr.dtype}")
        if arr.ndim != 1:
            raise AucuesError(f"image_bytes must be one flat byte array per image, got shape {arr.shape}")
        buf = arr
    if buf.size == 0:
        raise AucuesError("empty input: no image bytes")
    if buf.size > MAX_BYTES:
        raise AucuesError(f"encoded image is {buf.size} bytes, over the {MAX_BYTES} byte limit")
    from aucues.io import check_size

    # a supported format, and the size its header really declares, before decoding
    fmt, w, h = sniff_image(buf)
    check_size(w, h, "image", max_pixels)
    if fmt != "jpeg" and w * h > MAX_PIXELS_FULL_DECODE:
        raise AucuesError(f"image: a {fmt.upper()} of {w}x{h} is over the {MAX_PIXELS_FULL_DECODE} pixel limit "
                          f"for formats decoded at full size (a JPEG may be larger)")
    return buf


def shrink_for_detection(rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """(image with its long side at most max_side, factor back to the input's pixels)."""
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, 1.0
    k = max_side / max(h, w)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), max(h, w) / max_side


# ---------------------------------------------------------------------------------------------------
# Stage 1: preprocess

@dataclass
class PreprocessResult:
    image: np.ndarray         # (C, S, S) float32 normalised model input (C = preprocess.channels)
    landmarks: np.ndarray     # (68, 2) float32 in the aligned crop
    face_box: np.ndarray      # (4,) float32 x0, y0, x1, y1 in the original image
    num_faces: int
    aligned_face: np.ndarray  # (S, S, 3) uint8 RGB crop


class Preprocessor:
    """Decode, find the largest face, align it to the model's input size and normalise.
    The MediaPipeLandmarker (MediaPipe graphs) is built once and reused for every image."""

    def __init__(self, spec: ModelSpec, landmarker=None):
        from aucues.landmarks import make_landmarker

        self.spec = spec
        # None: MediaPipe; a kind name ("mediapipe" / "onnx", aucues.landmarks.LANDMARKERS); or an object
        if landmarker is None or isinstance(landmarker, str):
            landmarker = make_landmarker(landmarker or "mediapipe")
        self.landmarker = landmarker

    def decode(self, data) -> tuple[np.ndarray, float]:
        """Checked, decoded RGB image bounded for the face search, and the factor back to the input's px."""
        from aucues.io import decode_image_scaled

        buf = check_encoded(data)
        rgb, scale = decode_image_scaled(buf, what="image")  # large JPEGs decoded at 1/2..1/8
        rgb, shrink = shrink_for_detection(rgb)  # bounded face search (DETECT_MAX_SIDE)
        scale *= shrink
        if min(rgb.shape[:2]) < 16:
            raise NoFaceError(f"no face found: the image is only {rgb.shape[1]}x{rgb.shape[0]} pixels")
        return rgb, scale

    def finish(self, rgb: np.ndarray, scale: float, faces) -> PreprocessResult:
        """The largest face cropped, aligned and normalised for the model."""
        from aucues.crop import crop_face

        if not faces:
            raise NoFaceError("no face found in the image")
        face = faces[0]
        # framing, size, colour (a grayscale model gets the photo converted in normalize) and class
        # order all come from the model's PreprocessConfig (its alignment template too: served on
        # the crop it was trained on)
        al = crop_face(rgb, face.points, self.spec.preprocess)
        return PreprocessResult(image=self.spec.preprocess.normalize(al.image),
                                landmarks=al.points.astype(np.float32),
                                face_box=np.asarray(face.box, np.float32) * np.float32(scale),
                                num_faces=len(faces),
                                aligned_face=al.image)

    def __call__(self, data) -> PreprocessResult:
        rgb, scale = self.decode(data)
        return self.finish(rgb, scale, self.landmarker.detect(rgb))

    def many(self, items: list) -> list:
        """__call__ over several encoded images: per item a PreprocessResult or the exception that item
        raised. A landmarker with detect_many (the ONNX one) finds the faces of all images in one batched
        call per network; MediaPipe's goes image by image."""
        decoded: list = []
        for data in items:
            try:
                decoded.append(self.decode(data))
            except Exception as e:  # noqa: BLE001 - this item's failure only
                decoded.append(e)
        good = [k for k, d in enumerate(decoded) if not isinstance(d, Exception)]
        faces: dict[int, object] = {}
        if good and hasattr(self.landmarker, "detect_many"):
            try:
                found = self.landmarker.detect_many([decoded[k][0] for k in good])
                faces = dict(zip(good, found))
            except Exception:  # noqa: BLE001 - find the culprit image by image below
                faces = {}
        out: list = []
        for k, d in enumerate(decoded):
            if isinstance(d, Exception):
                out.append(d)
                continue
            try:
                f = faces[k] if k in faces else self.landmarker.detect(d[0])
                out.append(self.finish(d[0], d[1], f))
            except Exception as e:  # noqa: BLE001
                out.append(e)
        return out

    def close(self) -> None:
        self.landmarker.close()


# ---------------------------------------------------------------------------------------------------
# Stage 2: the classifier with ONNX Runtime

class OnnxClassifier:
    def __init__(self, path: str | Path, intra_op_threads: int = 0):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if intra_op_threads:
            so.intra_op_num_threads = int(intra_op_threads)
        # Idle ORT worker threads spin by default; in a server whose preprocess (MediaPipe) shares
        # the same few cores that spinning steals their CPU (measured in docs/benchmarks.md).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise AucuesError(f"{path}: ONNX Runtime cannot load the model ({e})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return dict(zip(self.output_names, outs))


# ---------------------------------------------------------------------------------------------------
# Stage 3: postprocess

def unit_map(m: np.ndarray, size: int) -> np.ndarray:
    """Min-max normalise to [0, 1], resize bilinearly to size x size, clamp (docs/method.md §6)."""
    import cv2

    m = np.nan_to_num(np.asarray(m, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(m)
    if m.shape != (size, size):
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(m, 0.0, 1.0).astype(np.float32)


def interpretability_score(attention: np.ndarray, landmarks: np.ndarray, label: int, size: int,
                           variant: str = "paper") -> float:
    """ATT-COS (docs/method.md §7) against the *predicted* class's AU map: the attention upsampled
    bilinearly, shifted by -min when negative, cosine with the AU map. NaN when the class has no AU
    map (Neutral) or the landmarks put every AU outside the crop."""
    import cv2

    from aucues.au_maps import au_map

    amap, valid = au_map(landmarks, label, size, kind="class", variant=variant)
    if not valid:
        return float("nan")
    t = np.nan_to_num(np.asarray(attention, np.float32))
    if t.shape != (size, size):
        t = cv2.resize(t, (size, size), interpolation=cv2.INTER_LINEAR)
    t = t.astype(np.float64)
    if t.min() < 0:
        t -= t.min()
    a = amap.astype(np.float64)
    cos = float((t * a).sum() / max(np.linalg.norm(t) * np.linalg.norm(a), 1e-8))
    return 0.0 if math.isnan(cos) else cos


@dataclass
class Explanation:
    label: str
    class_index: int
    probabilities: np.ndarray   # (C,)
    topk: list[str]
    cam: np.ndarray | None      # (S, S) predicted class CAM in [0, 1]; None: the model has none (APViT)
    attention: np.ndarray       # (S, S) aligned-layer attention in [0, 1]
    au_evidence: list[dict]
    interpretability_score: float


def postprocess(spec: ModelSpec, probabilities: np.ndarray, cam: np.ndarray | None, attention: np.ndarray,
                landmarks: np.ndarray) -> Explanation:
    """One sample's classifier outputs (no batch axis) -> label and explanations. The AU evidence and
    the score always come from the aligned layer's attention; `cam` None (a model without a CAM,
    spec.has_cam False) gives an explanation without one."""
    from aucues.au_evidence import au_evidence

    probs = np.asarray(probabilities, np.float32).reshape(-1)
    if probs.shape[0] != spec.num_classes:
        raise AucuesError(f"expected {spec.num_classes} class scores, got {probs.shape[0]}")
    if not np.all(np.isfinite(probs)):
        # argmax of NaN is 0: a NaN row would otherwise come back as a confident first-class label
        raise AucuesError("the classifier returned non-finite probabilities (NaN/inf); no label given")
    pred = int(np.argmax(probs))
    s = spec.image_size
    variant = spec.preprocess.codebook
    pts = np.asarray(landmarks, np.float32).reshape(NUM_LANDMARKS, 2)
    order = np.argsort(-probs, kind="stable")[: spec.topk]
    from aucues.au_evidence import au_evidence

    return Explanation(
        label=spec.class_names[pred], class_index=pred, probabilities=probs,
        topk=[spec.class_names[i] for i in order],
        cam=None if cam is None else unit_map(np.asarray(cam)[pred], s), attention=unit_map(attention, s),
        au_evidence=au_evidence(attention, pts, pred, variant=variant, size=s),
        interpretability_score=interpretability_score(attention, pts, pred, s, variant),
    )


# ---------------------------------------------------------------------------------------------------
# The whole pipeline in one process

def result_dict(spec: ModelSpec, pre: PreprocessResult, ex: Explanation) -> dict:
    """The JSON-able result, the same fields `aucues predict --json` prints (serve/result.py)."""
    from aucues.serve.result import make_result

    return make_result(spec.class_names, ex.label, ex.probabilities, ex.topk, ex.au_evidence,
                       ex.interpretability_score, pre.face_box, pre.num_faces, pre.landmarks)


class Pipeline:
    """preprocess -> ONNX Runtime -> postprocess, in-process, for one exported ONNX model."""

    def __init__(self, onnx_path: str | Path, landmarker=None, intra_op_threads: int = 0,
                 classifier: OnnxClassifier | None = None):
        self.spec = spec_from_onnx(onnx_path)
        # a shared classifier lets several pipelines (threads) use one session, like one Triton instance
        self.classifier = classifier or OnnxClassifier(onnx_path, intra_op_threads)
        self.preprocessor = Preprocessor(self.spec, landmarker)

    def classify(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """(C,S,S) or (N,C,S,S) normalised input -> raw classifier outputs (with batch axis)."""
        x = image[None] if image.ndim == 3 else image
        return self.classifier(x)

    def explain(self, pre: PreprocessResult) -> tuple[dict[str, np.ndarray], Explanation]:
        raw = self.classify(pre.image)
        k = self.spec.attention_layer
        cam = raw["cam"][0] if self.spec.has_cam else None
        ex = postprocess(self.spec, raw["probabilities"][0], cam, raw[f"attention_{k}"][0], pre.landmarks)
        return raw, ex

    def predict(self, data) -> dict:
        pre = self.preprocessor(data)
        _, ex = self.explain(pre)
        return result_dict(self.spec, pre, ex)

    def close(self) -> None:
        self.preprocessor.close()


def evidence_json(rows: list[dict]) -> str:
    return json.dumps(rows, separators=(",", ":"))
