"""Triton Python model `postprocess`: classifier outputs + aligned landmarks -> label and explanations.

Outputs: label (BYTES), probabilities, topk labels, cam (predicted class CAM upsampled to the aligned
face, [0,1]; only for a model with a CAM: APViT has none, the spec says), attention (aligned-layer attention upsampled, [0,1]), au_evidence (BYTES JSON, share of
attention inside each AU region of the predicted class) and interpretability_score (cosine between
attention and the predicted class's AU map; NaN for Neutral, which has no AU map) and status.

Per-row results (issue 13): a row whose input status is not "ok" (preprocess failed it) or whose
classifier outputs cannot be explained (non-finite probabilities) gets zeros, an empty label and
its error as status, never a label. A one-row request whose row fails here fails as a whole
(INTERNAL: the model's fault)."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from aucues.serve.pipeline import evidence_json, postprocess
from aucues.serve.spec import ModelSpec


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.spec = ModelSpec.from_json(config["parameters"]["aucues"]["string_value"])
        self.att = f"attention_{self.spec.attention_layer}"

    def _row(self, status, probs, cam, att, pts):
        """(explanation or None, status bytes) for one row."""
        if status != b"ok":
            return None, status
        try:
            return postprocess(self.spec, probs, cam, att, pts), b"ok"
        except Exception as e:  # noqa: BLE001 - this row's failure only
            return None, f"postprocess failed: {e.__class__.__name__}: {e}".encode()

    def _one(self, request):
        get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        probs, att, pts = get("probabilities"), get(self.att), get("landmarks")
        n = probs.shape[0]
        cam = get("cam") if self.spec.has_cam else [None] * n  # no `cam` input otherwise (serve/pbtxt.py)
        status = get("status").reshape(-1)
        if n == 1 and status[0] == b"ok":  # the single-image path: its failure fails the request
            rows, status = [postprocess(self.spec, probs[0], cam[0], att[0], pts[0])], [b"ok"]
        else:
            rows, status = zip(*(self._row(status[i], probs[i], cam[i], att[i], pts[i]) for i in range(n)))
        s, c, k = self.spec.image_size, self.spec.num_classes, self.spec.topk
        zero = np.zeros((s, s), np.float32)  # a failed row: zeros, empty label, never a label
        out = [
            pb_utils.Tensor("label", np.array([[r.label.encode() if r else b""] for r in rows], dtype=np.object_)),
            pb_utils.Tensor("probabilities", np.stack([r.probabilities if r else np.zeros(c, np.float32)
                                                       for r in rows]).astype(np.float32)),
            pb_utils.Tensor("topk", np.array([[t.encode() for t in r.topk] if r else [b""] * k for r in rows],
                                             dtype=np.object_)),
            pb_utils.Tensor("attention", np.stack([r.attention if r else zero for r in rows]).astype(np.float32)),
            pb_utils.Tensor("au_evidence", np.array([[evidence_json(r.au_evidence).encode() if r else b"[]"]
                                                     for r in rows], dtype=np.object_)),
            pb_utils.Tensor("interpretability_score",
                            np.array([[r.interpretability_score if r else 0.0] for r in rows], np.float32)),
            pb_utils.Tensor("status", np.array([[t] for t in status], dtype=np.object_)),
        ]
        if self.spec.has_cam:
            out.insert(3, pb_utils.Tensor("cam", np.stack([r.cam if r else zero for r in rows]).astype(np.float32)))
        return pb_utils.InferenceResponse(output_tensors=out)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as e:  # noqa: BLE001 - one request's failure stays its own
                # the model's fault (e.g. non-finite probabilities), never the client's: INTERNAL
                err = pb_utils.TritonError(f"postprocess failed: {e.__class__.__name__}: {e}",
                                           pb_utils.TritonError.INTERNAL)
                responses.append(pb_utils.InferenceResponse(error=err))
        return responses
