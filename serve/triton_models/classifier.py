"""Triton Python model `classifier` (backend "python"): the exported ONNX run by ONNX Runtime.

For servers without the onnxruntime backend (the tritonserver in the nvidia-pytriton wheel). The
requests of a dynamic batch are concatenated into one ONNX Runtime call and split back; the ONNX
file name and thread count come from the config's parameters."""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from aucues.serve.pipeline import OnnxClassifier


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / args["model_version"] / params.get("model_file", "model.onnx")
        self.model = OnnxClassifier(path, int(params.get("intra_op_threads", "0") or 0))
        self.outputs = [o["name"] for o in config["output"]]
        missing = set(self.outputs) - set(self.model.output_names)
        if missing:
            raise pb_utils.TritonModelException(f"{path} lacks outputs {sorted(missing)}")

    def _run(self, images):
        out = self.model(np.concatenate(images) if len(images) > 1 else images[0])
        responses, start = [], 0
        for x in images:
            n = x.shape[0]
            tensors = [pb_utils.Tensor(k, np.ascontiguousarray(out[k][start:start + n])) for k in self.outputs]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def execute(self, requests):
        images = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        try:
            return self._run(images)
        except Exception:  # noqa: BLE001 - retry one by one so one bad request cannot fail the rest
            responses = []
            for x in images:
                try:
                    responses.extend(self._run([x]))
                except Exception as e:  # noqa: BLE001
                    err = pb_utils.TritonError(f"classifier failed: {e.__class__.__name__}: {e}")
                    responses.append(pb_utils.InferenceResponse(error=err))
            return responses
