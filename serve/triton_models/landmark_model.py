"""Triton Python model for one ONNX landmark network (face detectors, face mesh): ONNX Runtime on CPU.

For servers without the onnxruntime backend (the tritonserver in the nvidia-pytriton wheel); a GPU
host serves the same model.onnx with platform onnxruntime_onnx instead. The requests of a dynamic batch
(BLS calls from the preprocess instances) are concatenated into one ONNX Runtime call and split back.
Input and output names come from the config."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / args["model_version"] / params.get("model_file", "model.onnx")
        opts = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0") or 0)
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = config["input"][0]["name"]
        self.outputs = [o["name"] for o in config["output"]]

    def _run(self, xs):
        out = self.sess.run(self.outputs, {self.input: np.concatenate(xs) if len(xs) > 1 else xs[0]})
        responses, start = [], 0
        for x in xs:
            n = x.shape[0]
            tensors = [pb_utils.Tensor(k, np.ascontiguousarray(v[start:start + n])) for k, v in zip(self.outputs, out)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def execute(self, requests):
        xs = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            return self._run(xs)
        except Exception:  # noqa: BLE001 - one by one, so one bad request cannot fail the rest
            responses = []
            for x in xs:
                try:
                    responses.extend(self._run([x]))
                except Exception as e:  # noqa: BLE001
                    err = pb_utils.TritonError(f"landmark model failed: {e.__class__.__name__}: {e}")
                    responses.append(pb_utils.InferenceResponse(error=err))
            return responses
