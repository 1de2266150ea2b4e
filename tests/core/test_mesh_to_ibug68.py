"""The mesh -> iBUG-68 mapping on a real MediaPipe mesh (astronaut.png), frontal and turned in 3D."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import aucues.landmarks as landmarks
from aucues.io import read_image
from aucues.landmarks import MP468_TO_IBUG68
from aucues.mesh_to_ibug68 import CHIN, ibug68_from_mesh, outline


@pytest.fixture(scope="module")
def astro_mesh(lm, astronaut_path):
    """The (468, 3) mesh (image px) of the astronaut's face, as MediaPipeLandmarker passes it on."""
    seen = []
    original = landmarks._to_ibug68
    landmarks._to_ibug68 = lambda mesh: (seen.append(mesh.copy()), original(mesh))[1]
    try:
        faces = lm.detect(read_image(astronaut_path))
    finally:
        landmarks._to_ibug68 = original
    assert len(faces) == 1 and len(seen) >= 1
    mesh = seen[-1]
    assert mesh.shape == (468, 3)
    np.testing.assert_allclose(ibug68_from_mesh(mesh), faces[0].points, atol=1e-3)
    return mesh


def _yaw(mesh: np.ndarray, degrees: float) -> np.ndarray:
    """The mesh turned about the vertical axis through its centre (orthographic, as MediaPipe's x, y)."""
    a = np.radians(degrees)
    c = mesh.mean(0)
    x, z = mesh[:, 0] - c[0], mesh[:, 2] - c[2]
    out = mesh.copy()
    out[:, 0] = c[0] + x * np.cos(a) + z * np.sin(a)
    out[:, 2] = c[2] - x * np.sin(a) + z * np.cos(a)
    return out


def _signed_dist(ring: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance of each point to the outline, > 0 inside it."""
    c = ring.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(c, (float(x), float(y)), True) for x, y in pts])


def _iod(mesh):
    return float(np.linalg.norm(mesh[33, :2] - mesh[263, :2]))


def test_frontal_jaw_is_the_outline_equally_spaced(astro_mesh):
    pts = ibug68_from_mesh(astro_mesh)
    iod = _iod(astro_mesh)
    jaw = pts[:17]
    assert np.abs(_signed_dist(outline(astro_mesh[:, :2]), jaw)).max() < 0.01 * iod
    assert np.linalg.norm(jaw[8] - astro_mesh[CHIN, :2]) < 0.03 * iod
    for half in (jaw[:9], jaw[8:]):
        steps = np.linalg.norm(np.diff(half, axis=0), axis=1)
        assert steps.max() < 1.25 * steps.min()  # chords of equal arcs on a gently curved outline


@pytest.mark.parametrize("yaw", [-35.0, 35.0])
def test_turned_head_jaw_follows_the_silhouette(astro_mesh, yaw):
    turned = _yaw(astro_mesh, yaw)
    iod = _iod(turned)
    ring = outline(turned[:, :2])
    new_jaw = ibug68_from_mesh(turned)[:17]
    old_jaw = turned[list(MP468_TO_IBUG68[:17]), :2]
    # The fixed oval vertices of the far side lie behind the cheek: well inside the silhouette.
    assert _signed_dist(ring, old_jaw).max() > 0.05 * iod
    # The new jaw points lie on the silhouette.
    assert np.abs(_signed_dist(ring, new_jaw)).max() < 0.01 * iod
    # and the brows, eyes, nose and lips still come from their own vertices (finite, ordered)
    pts = ibug68_from_mesh(turned)
    assert np.isfinite(pts).all()
    assert pts[17:27, 1].mean() < pts[36:48, 1].mean() < pts[30, 1] < pts[48:68, 1].mean() < pts[8, 1]


def test_a_failing_mapping_keeps_the_face(astro_mesh, monkeypatch):
    import aucues.mesh_to_ibug68 as m2i

    def broken(mesh):
        raise ValueError("no outline")

    monkeypatch.setattr(m2i, "ibug68_from_mesh", broken)
    pts = landmarks._to_ibug68(astro_mesh)
    np.testing.assert_array_equal(pts, astro_mesh[list(MP468_TO_IBUG68), :2])
    # A degenerate (collapsed) mesh also yields 68 finite points instead of an error.
    monkeypatch.undo()
    pts = landmarks._to_ibug68(np.zeros((468, 3)))
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
