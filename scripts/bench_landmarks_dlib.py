"""aucues' 68 landmarks against dlib's 68-point shape predictor on every real photo we have
(docs/au_maps.md, "Landmark accuracy", records the output).

    .venv/bin/python scripts/bench_landmarks_dlib.py [--out runs/bench/landmarks_dlib.json]

Needs the test extra (dlib-bin, face-recognition-models). Photos: .assets/ (astronaut.png, t1.jpg,
Tom_Hanks_54745.png upscaled 4x for dlib's detector), matplotlib's grace_hopper.jpg, scikit-image's
camera.png (dlib finds no face there), each also mirrored. For every face both find, per region:

- distance to dlib of the fixed vertex map ("before") and of aucues.mesh_to_ibug68 ("after"),
  in units of dlib's outer-eye distance (lm36-lm45);
- mirror disagreement of each method: its points on the mirrored photo, mirrored back (iBUG's
  left/right permutation), against its points on the photo. Half of it is a lower bound on that
  method's own mean error (the true points are mirror-symmetric, so the two runs cannot both be right
  when they disagree; triangle inequality).
- a third reference for the eye corners and the nose base: dlib's 5-point model (trained on dlib's
  own 5-point annotations, not iBUG's). With three estimators whose errors are independent, the
  pairwise mean squared distances give each one's own mean squared error:
  e_A^2 = (d_AB^2 + d_AC^2 - d_BC^2) / 2. (dlib's two models share the detector box and the method,
  so their errors correlate; that makes d_68,5 small and this estimate pessimistic for aucues.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aucues.landmarks as landmarks  # noqa: E402
from aucues.assets import photo  # noqa: E402
from aucues.io import read_image  # noqa: E402

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "lips": range(48, 68)}
# iBUG-68 index of each point's mirror image.
MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
          + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
          + [64, 63, 62, 61, 60, 67, 66, 65])


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    from skimage import data

    hanks = read_image(photo("Tom_Hanks_54745.png"))
    out = {"astronaut": read_image(photo("astronaut.png")), "t1": read_image(photo("t1.jpg")),
           "hanks": cv2.resize(hanks, (448, 448), interpolation=cv2.INTER_CUBIC),
           "hopper": read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
           "camera": np.dstack([data.camera()] * 3)}
    out.update({k + "_mirror": np.ascontiguousarray(v[:, ::-1]) for k, v in list(out.items())})
    return out


def dlib_68():
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    model = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    det, pred = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))
    pred5 = dlib.shape_predictor(str(model.parent / "shape_predictor_5_face_landmarks.dat"))

    def run(rgb):
        """[(68 points, 5 points)] per face dlib's detector finds."""
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return [tuple(np.array([(p.x, p.y) for p in pr(g, r).parts()], np.float64) for pr in (pred, pred5))
                for r in det(g, 1)]
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/landmarks_dlib.json")
    args = ap.parse_args()
    dl = dlib_68()
    meshes: list[np.ndarray] = []
    original = landmarks._to_ibug68
    landmarks._to_ibug68 = lambda mesh: (meshes.append(mesh.copy()), original(mesh))[1]
    faces = {}  # (photo, i) -> {"dlib", "before", "after"}
    counts = {}
    with landmarks.MediaPipeLandmarker() as lm:
        for name, img in photos().items():
            meshes.clear()
            found = lm.detect(img)
            counts[name] = {"mediapipe": len(found)}
            ds = dl(img)
            counts[name]["dlib"] = len(ds)
            for i, (d, d5) in enumerate(ds):
                iod = np.linalg.norm(d[36] - d[45])
                j = min(range(len(found)), key=lambda j: np.linalg.norm(found[j].points.mean(0) - d.mean(0)), default=None)
                if j is None or np.linalg.norm(found[j].points.mean(0) - d.mean(0)) > 0.5 * iod:
                    continue
                mesh = min(meshes, key=lambda m: np.abs(original(m) - found[j].points).max())
                faces[(name, i)] = {"dlib": d, "dlib5": d5, "after": found[j].points.astype(np.float64),
                                    "before": mesh[list(landmarks.MP468_TO_IBUG68), :2], "w": img.shape[1]}
    landmarks._to_ibug68 = original

    def table(errs: np.ndarray) -> dict:
        return {r: round(float(errs[:, list(ix)].mean()), 3) for r, ix in REGIONS.items()} | {"all": round(float(errs.mean()), 3)}

    report = {"counts": counts, "faces": len(faces)}
    for m in ("before", "after"):
        e = np.array([np.linalg.norm(f[m] - f["dlib"], axis=1) / np.linalg.norm(f["dlib"][36] - f["dlib"][45])
                      for f in faces.values()])
        report[f"{m}_vs_dlib"] = table(e)
        report[f"{m}_vs_dlib_rms"] = {r: round(float(np.sqrt((e[:, list(ix)] ** 2).mean())), 3) for r, ix in REGIONS.items()}
        report[f"{m}_per_face"] = {f"{k[0]}#{k[1]}": round(float(v), 3) for k, v in zip(faces, e.mean(1))}
    # mirror disagreement: pair each face with the face of the mirrored photo at the mirrored place
    for m in ("dlib", "before", "after"):
        e = []
        for (name, i), f in faces.items():
            if name.endswith("_mirror"):
                continue
            cands = [g for (n2, _), g in faces.items() if n2 == name + "_mirror"]
            if not cands:
                continue
            back = lambda p, w: np.c_[w - 1 - p[MIRROR, 0], p[MIRROR, 1]]  # noqa: E731
            g = min(cands, key=lambda g: np.linalg.norm(back(g["dlib"], f["w"]).mean(0) - f["dlib"].mean(0)))
            e.append(np.linalg.norm(f[m] - back(g[m], f["w"]), axis=1) / np.linalg.norm(f["dlib"][36] - f["dlib"][45]))
        report[f"mirror_{m}"] = table(np.array(e))
    # Three-estimator errors on the points the 5-point model has: dlib-5 order is left-eye outer and
    # inner corner, right-eye outer and inner corner, nose base = iBUG 45, 42, 36, 39, 33.
    for label, sel in (("eye_corners", [0, 1, 2, 3]), ("nose_base", [4])):
        idx = [[45, 42, 36, 39, 33][j] for j in sel]

        def pts(f, a):
            return f[a][sel] if a == "dlib5" else f[a][idx]

        def msd(a, b):  # mean squared distance per point, in units of each face's outer-eye distance
            return float(np.mean([np.sum((pts(f, a) - pts(f, b)) ** 2, 1).mean() / np.sum((f["dlib"][36] - f["dlib"][45]) ** 2)
                                  for f in faces.values()]))
        for m in ("before", "after"):
            d_m68, d_m5, d_685 = msd(m, "dlib"), msd(m, "dlib5"), msd("dlib", "dlib5")
            rms = lambda v: round(float(np.sign(v) * np.sqrt(abs(v))), 3)  # noqa: E731
            report[f"three_way_{label}_{m}"] = {"aucues": rms((d_m68 + d_m5 - d_685) / 2),
                                                "dlib68": rms((d_m68 + d_685 - d_m5) / 2),
                                                "dlib5": rms((d_m5 + d_685 - d_m68) / 2)}
    print(json.dumps(report, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
