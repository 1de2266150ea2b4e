"""MediaPipe's 468-point face mesh -> the 68 iBUG landmarks, by their definitions (docs/au_maps.md).

A fixed vertex per landmark (MP468_TO_IBUG68 in aucues.landmarks) is wrong wherever an iBUG point is
not tied to one place on the skin:

- **Jaw 0-16 is the visible face outline** (the occluding contour), from the ear through the chin to
  the other ear, its 17 points equally spaced along it (dlib's 68-point model, trained on iBUG 300-W,
  spaces them at 1/8 of each half within +-0.01). On a turned head the mesh's face-oval vertices of the
  far side lie behind the cheek, so the outline is taken from the *projected mesh*: all its triangles
  are filled into a mask and the outer boundary of that mask is traced. Nose and lip triangles are left
  out, so that on a near-profile face the outline follows the cheek and chin and not the protruding
  nose tip or lips. The ends and the chin are anchored at the outline points nearest to the mesh's
  ear-level oval vertices (127, 356) and chin vertex (152); the points between are resampled by arc
  length.
- **Brows 17-26 follow the upper edge of the brow**, tail (17, 26) to head (21, 22), equally spaced.
  The mesh's upper brow row (70-63-105-66-107) is that edge; the head of the brow is the inner end of
  the brow, between the upper and lower rows' inner vertices (107/55), so the polyline ends there.
- **Eyes and nose bridge**: iBUG's lid points 37/38 and 40/41 sit at a third and two thirds of each
  lid between the corners, and 28/29 evenly between the nasion (27) and the nose tip (30), so they
  are resampled by arc length along the mesh's dense lid and bridge contours (8-9 unevenly spaced
  vertices) instead of taking the nearest vertex.
- **Lips and nostrils stay fixed vertices**: each of those iBUG points is an anatomical place (lip
  corners, cupid's-bow peaks, lip centres, alar bases, subnasale) to which a mesh vertex is anchored
  too; arc-length resampling moved the lip centres toward the near side of turned faces (measured:
  twice as far from dlib).

Spacing is measured in the image (x, y), as iBUG points are annotated in the picture (resampling in
3D with the mesh's z was measured further from dlib for the brows). One rasterisation per face
(~5 ms at 256 px); any failure falls back to the fixed map in aucues.landmarks, so a face MediaPipe
finds is never dropped.
"""

from __future__ import annotations

import numpy as np

# Mesh polylines (MediaPipe canonical face-mesh vertex ids, from mediapipe's face_mesh_connections),
# "right" = the subject's right = image left on a frontal face, as in iBUG.
JAW_ENDS = (127, 356)   # ear-level oval vertices (nearest mesh vertices to iBUG 0 and 16)
CHIN = 152
# Brow upper edge, tail -> head, plus the head's lower inner vertex (the head point is their middle).
BROW_R = (70, 63, 105, 66, 107)
BROW_L = (300, 293, 334, 296, 336)
BROW_HEAD_LOW = (55, 285)
# Eye lids from the outer corner to the inner corner.
EYE_R_UP = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_R_LO = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_L_UP = (263, 466, 388, 387, 386, 385, 384, 398, 362)
EYE_L_LO = (263, 249, 390, 373, 374, 380, 381, 382, 362)
# Nose bridge from the nasion (168) to the tip (4: the vertex nearest dlib's 30 on 14 of 18 faces
# measured), and the lower nose edge: right alar base, subnasale (2), left alar base.
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4)
NOSE_LOW = (75, 97, 2, 326, 305)
# Lips, iBUG order 48-67: fixed vertices. Every iBUG lip point is an anatomical place (corners, the
# cupid's-bow peaks 50/52 = mesh 37/267, the centres 51/57/62/66 = mesh 0/17/13/14) and the mesh's
# vertices are anchored to the same places; arc-length resampling in the image shifts the centres
# toward the near side of a turned face (measured: 2x further from dlib).
LIPS = (61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91, 78, 82, 13, 312, 308, 317, 14, 87)
_LIP_OUTLINE = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321,
                375)

# Vertices whose triangles are left out of the outline mask (the nose and the lips protrude beyond
# the cheek-chin outline on a near-profile face; iBUG's jaw is the face outline, not the nose).
_NOSE_IDS = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 64, 48, 115, 220, 45, 275, 440,
             344, 278, 294)
_PROTRUDING = frozenset(_NOSE_IDS + _LIP_OUTLINE)
_RASTER = 256  # px: the face is rasterised at this size (outline precision ~0.4% of the face)

_triangles: np.ndarray | None = None


def mesh_triangles() -> np.ndarray:
    """(T, 3) vertex ids of the mesh's triangles without the protruding ones, from mediapipe's
    tessellation edge list (a triangle = three mutually connected vertices). Built once."""
    global _triangles
    if _triangles is None:
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

        nbr: dict[int, set[int]] = {}
        for a, b in FACEMESH_TESSELATION:
            nbr.setdefault(a, set()).add(b)
            nbr.setdefault(b, set()).add(a)
        tris = {tuple(sorted((a, b, c))) for a in nbr for b in nbr[a] for c in nbr[a] & nbr[b]}
        _triangles = np.array(sorted(t for t in tris if not _PROTRUDING.intersection(t)), np.int32)
    return _triangles


def resample(poly: np.ndarray, n: int) -> np.ndarray:
    """n points equally spaced by arc length along a polyline (its ends included)."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    s = np.r_[0.0, np.cumsum(seg)]
    if s[-1] <= 0:
        return np.repeat(poly[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, poly[:, k]) for k in range(poly.shape[1])], axis=1)


def outline(xy: np.ndarray) -> np.ndarray:
    """(K, 2) outer boundary of the projected mesh (without nose and lips), image px, closed."""
    import cv2

    lo, hi = xy.min(0), xy.max(0)
    k = (_RASTER - 8) / max(float((hi - lo).max()), 1e-6)
    q = np.round((xy - lo) * k * 4).astype(np.int32) + 16  # 2 fractional bits (shift=2), 4 px margin
    mask = np.zeros((_RASTER, _RASTER), np.uint8)
    for tri in q[mesh_triangles()]:  # one by one: fillPoly's even-odd rule would cut out overlaps
        cv2.fillConvexPoly(mask, tri, 255, lineType=cv2.LINE_8, shift=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)[:, 0].astype(np.float64)
    return (c - 4) / k + lo


def jaw(xy: np.ndarray) -> np.ndarray:
    """The 17 jaw points: the outline from JAW_ENDS[0] via the chin to JAW_ENDS[1], equally spaced."""
    ring = outline(xy)
    n = len(ring)
    near = [int(np.argmin(np.linalg.norm(ring - xy[v], axis=1))) for v in (JAW_ENDS[0], CHIN, JAW_ENDS[1])]
    top = int(np.argmin(np.linalg.norm(ring - xy[10], axis=1)))  # forehead: the path must avoid it

    def path(i: int, j: int) -> np.ndarray:
        fwd = [(i + s) % n for s in range((j - i) % n + 1)]
        bwd = [(i - s) % n for s in range((i - j) % n + 1)]
        return ring[fwd if top not in fwd else bwd]

    a, c, b = near
    return np.concatenate([resample(path(a, c), 9), resample(path(c, b), 9)[1:]])


def _brow(xy: np.ndarray, upper: tuple[int, ...], head_low: int) -> np.ndarray:
    poly = xy[list(upper)]
    poly[-1] = (xy[upper[-1]] + xy[head_low]) / 2  # the head: inner end of the brow
    return resample(poly, 5)


def _eye(xy: np.ndarray, up: tuple[int, ...], lo: tuple[int, ...]) -> np.ndarray:
    """iBUG eye order: outer corner, 2 upper-lid points, inner corner, 2 lower-lid points (inner first).

    A corner is where the lids meet: the centroid of the mesh's corner vertex and the first vertex of
    each lid. The corner vertex alone (33, 133, 263, 362) sits at the skin fold beyond it: both of
    dlib's models, trained on different annotations (iBUG 300-W's 68 points and dlib's own 5-point
    set), put the corners 0.01-0.04 of the outer-eye distance inside it (docs/au_maps.md).
    """
    u, l_ = xy[list(up)].copy(), xy[list(lo)].copy()
    for end, nxt in ((0, 1), (-1, -2)):
        u[end] = l_[end] = (xy[up[end]] + xy[up[nxt]] + xy[lo[nxt]]) / 3
    u, l_ = resample(u, 4), resample(l_, 4)
    return np.stack([u[0], u[1], u[2], u[3], l_[2], l_[1]])


def ibug68_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG points from a (468, 2+) mesh in image px (x, y; z is not used: iBUG points are
    annotated in the picture, so spacing is measured in the image, as dlib's are)."""
    xy = np.asarray(mesh, np.float64)[:, :2]
    out = np.empty((68, 2))
    out[0:17] = jaw(xy)
    # iBUG's right brow (17-21) runs from its tail at the image left to its head; the left brow
    # (22-26) from its head to its tail.
    out[17:22] = _brow(xy, BROW_R, BROW_HEAD_LOW[0])
    out[22:27] = _brow(xy, BROW_L, BROW_HEAD_LOW[1])[::-1]
    out[27:31] = resample(xy[list(NOSE_BRIDGE)], 4)
    out[31:36] = xy[list(NOSE_LOW)]
    out[36:42] = _eye(xy, EYE_R_UP, EYE_R_LO)
    # iBUG's left eye starts at its inner corner (42) and runs clockwise in the image like the right.
    out[42:48] = _eye(xy, EYE_L_UP, EYE_L_LO)[[3, 2, 1, 0, 5, 4]]
    out[48:68] = xy[list(LIPS)]
    return out
