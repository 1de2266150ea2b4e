"""OnnxLandmarker against real MediaPipe (the reference) on the shipped photos and test images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aucues.errors import AucuesError
from aucues.io import read_image
from aucues.onnx_landmarks import detection as det
from aucues.onnx_landmarks.landmarker import OnnxLandmarker

REL_TOL = 0.01  # mean 68-point distance / outer-eye distance (lm36-lm45), issue 17's parity bar


@pytest.fixture(scope="module")
def olm():
    with OnnxLandmarker() as landmarker:
        yield landmarker


def _small_face_canvas(astronaut_path):
    small = cv2.resize(read_image(astronaut_path), (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((1800, 2400, 3), 128, np.uint8)
    canvas[1300:1556, 1700:1956] = small
    return canvas


def _rotated(astronaut_path, deg=25):
    img = read_image(astronaut_path)
    m = cv2.getRotationMatrix2D((225, 130), deg, 1.0)
    return cv2.warpAffine(img, m, (512, 512), borderMode=cv2.BORDER_REFLECT)


def _cases(astronaut_path, six_faces_path, aligned_face_path):
    return {
        "astronaut": read_image(astronaut_path),
        "t1_six_faces": read_image(six_faces_path),
        "tom_hanks_aligned": read_image(aligned_face_path),
        "small_face_on_canvas": _small_face_canvas(astronaut_path),
        "astronaut_rotated_25deg": _rotated(astronaut_path),
        "astronaut_non_square": read_image(astronaut_path)[:, 60:420],
    }


def assert_parity(ref, got, what):
    """Same faces (aucues.onnx_landmarks.device_bench.face_parity: each matched to its nearest) and mean
    68-point distance <= REL_TOL of the eye span, with the same detection score."""
    from aucues.onnx_landmarks.device_bench import face_parity

    p = face_parity(ref, got)
    assert len(got) == len(ref), f"{what}: MediaPipe found {len(ref)} faces, ONNX {len(got)}"
    assert p["same_faces"], f"{what}: two MediaPipe faces matched one ONNX face"
    for i, j, dist in p["matches"]:
        assert dist <= REL_TOL, f"{what}: mean distance {dist:.4f} of the outer-eye span"
        assert abs(got[j].score - ref[i].score) < 0.02


def test_parity_with_mediapipe(lm, olm, astronaut_path, six_faces_path, aligned_face_path):
    cases = _cases(astronaut_path, six_faces_path, aligned_face_path)
    found = 0
    for name, img in cases.items():
        ref = lm.detect(img)
        assert_parity(ref, olm.detect(img), name)
        found += len(ref)
    assert found == 1 + 6 + 1 + 1 + 1 + 1  # the reference itself found every face


def test_batched_equals_single(olm, astronaut_path, six_faces_path, aligned_face_path):
    imgs = [read_image(p) for p in (astronaut_path, six_faces_path, aligned_face_path)]
    batched = olm.detect_many(imgs)
    for img, faces in zip(imgs, batched):
        single = olm.detect(img)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            np.testing.assert_allclose(a.points, b.points, atol=1e-3)


def test_no_face_and_bad_input(olm):
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    assert olm.detect(gradient) == []
    with pytest.raises(AucuesError):
        olm.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(AucuesError):
        OnnxLandmarker(max_faces=0)


def test_closed_landmarker_refuses(astronaut_path):
    o = OnnxLandmarker()
    o.close()
    with pytest.raises(AucuesError):
        o.detect(read_image(astronaut_path))


def test_anchor_counts_match_the_models():
    assert det.anchors(det.SHORT_RANGE).shape == (896, 2)
    assert det.anchors(det.FULL_RANGE).shape == (2304, 2)
    a = det.anchors(det.SHORT_RANGE)
    # First grid: 16x16 cells of 8 px, 2 anchors each; centres at half a cell.
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])


def test_weighted_nms_averages_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    kps[1] += 3
    scores = np.array([0.9, 0.6, 0.7])
    b, k, s = det.weighted_nms(boxes, kps, scores)
    assert s.tolist() == [0.9, 0.7]
    np.testing.assert_allclose(b[0], [0.4, 0.4, 10.4, 10.4])  # (0*0.9 + 1*0.6) / 1.5
    np.testing.assert_allclose(k[0], 1.2)
    np.testing.assert_allclose(b[1], boxes[2])
