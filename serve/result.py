"""The one result schema of a prediction: what `aucues predict --json` prints, whether the answer came
from the in-process pipeline or from the served ensemble's output tensors."""

from __future__ import annotations

import math

import numpy as np


def make_result(class_names, label: str, probabilities, topk, au_evidence: list[dict], score: float,
                face_box, num_faces: int, landmarks) -> dict:
    """JSON-able result; a NaN interpretability score (no AU map, e.g. Neutral) becomes None."""
    score = float(score)
    return {
        "label": label,
        "probabilities": {n: float(p) for n, p in zip(class_names, probabilities)},
        "topk": list(topk),
        "au_evidence": au_evidence,
        "interpretability_score": None if math.isnan(score) else score,
        "face_box": [float(v) for v in face_box],
        "num_faces": int(num_faces),
        "landmarks": np.round(np.asarray(landmarks, np.float64), 2).tolist(),
    }


def evidence_text(rows: list[dict] | None, n: int = 3) -> str:
    """The top `n` AU evidence rows as text: 'AU12 lip corner puller 0.41, AU6 cheek raiser 0.22'."""
    return ", ".join(f"{r['name']} {r['share']:.2f}" for r in (rows or [])[:n])
