"""Triton Python model `postprocess`: classifier outputs + aligned landmarks -> label and explanations.

Outputs: label (BYTES), probabilities, topk labels, cam (predicted class CAM upsampled to the aligned
face, [0,1]), attention (aligned-layer attention upsampled, [0,1]), au_evidence (BYTES JSON, share of
attention inside each AU region of the predicted class) and interpretability_score (cosine between
attention and the predicted class's AU map; NaN for Neutral, which has no AU map)."""

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

    def _one(self, request):
        get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
        probs, cam, att, pts = get("probabilities"), get("cam"), get(self.att), get("landmarks")
        rows = [postprocess(self.spec, probs[i], cam[i], att[i], pts[i]) for i in range(probs.shape[0])]
        out = [
            pb_utils.Tensor("label", np.array([[r.label.encode()] for r in rows], dtype=np.object_)),
            pb_utils.Tensor("probabilities", np.stack([r.probabilities for r in rows]).astype(np.float32)),
            pb_utils.Tensor("topk", np.array([[t.encode() for t in r.topk] for r in rows], dtype=np.object_)),
            pb_utils.Tensor("cam", np.stack([r.cam for r in rows]).astype(np.float32)),
            pb_utils.Tensor("attention", np.stack([r.attention for r in rows]).astype(np.float32)),
            pb_utils.Tensor("au_evidence",
                            np.array([[evidence_json(r.au_evidence).encode()] for r in rows], dtype=np.object_)),
            pb_utils.Tensor("interpretability_score",
                            np.array([[r.interpretability_score] for r in rows], np.float32)),
        ]
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
