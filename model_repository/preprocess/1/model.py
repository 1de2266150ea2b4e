"""Triton Python model `preprocess`: encoded image bytes -> aligned, normalised face.

Input  image_bytes (UINT8 [-1], JPEG/PNG/BMP/WebP). Outputs image (3,S,S) FP32, landmarks (68,2) in
the aligned crop, face_box (4,) in the original image, num_faces (1,) INT32, aligned_face (S,S,3) UINT8.
S, mean and std come from the `aucues` parameter that `aucues repository build` generated from the
ONNX metadata. Each request gets its own response or its own TritonError: a bad image never fails
the other requests of a dynamic batch.

Per-row results (issue 13): output status (BYTES [1]) is "ok" or the row's own error. A request of
several rows answers every good row; a bad row carries zeros and its error text. A one-row request
whose row is bad fails as a whole, as before (HTTP 400 / gRPC INVALID_ARGUMENT for the client's
fault)."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from aucues.errors import AucuesError
from aucues.serve.pipeline import Preprocessor
from aucues.serve.spec import ModelSpec


def _error(msg, client_fault):
    """A per-request error: the client's fault (bad image, no face, too large) is INVALID_ARGUMENT,
    so HTTP answers 400 and gRPC INVALID_ARGUMENT; anything else is INTERNAL."""
    code = pb_utils.TritonError.INVALID_ARG if client_fault else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(msg, code))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.spec = ModelSpec.from_json(config["parameters"]["aucues"]["string_value"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        landmarker = None  # MediaPipe graphs, built once per instance
        if params.get("landmarker") == "onnx":  # the served landmark models, called by BLS
            from aucues.onnx_landmarks.landmarker import OnnxLandmarker
            from aucues.serve.bls import BlsRunner

            landmarker = OnnxLandmarker(runner=BlsRunner(pb_utils, int(params.get("landmark_max_batch", "32"))))
        self.pre = Preprocessor(self.spec, landmarker)

    def _rows(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, "image_bytes")
        if tensor is None:
            raise AucuesError("missing input 'image_bytes'")
        data = tensor.as_numpy()
        if data.ndim != 2:
            raise AucuesError(f"image_bytes must have shape [batch, bytes], got {list(data.shape)}")
        return data

    def _response(self, results):
        """One request's response from its rows' results (PreprocessResult or the row's exception)."""
        if len(results) == 1:  # the single-image path: a bad image fails the request (see execute)
            if isinstance(results[0], Exception):
                raise results[0]
            rows, status = results, [b"ok"]
        else:
            rows, status = [], []
            for r in results:
                if isinstance(r, AucuesError):
                    rows.append(None)
                    status.append(str(r).encode())
                elif isinstance(r, Exception):  # this row's failure only
                    rows.append(None)
                    status.append(f"preprocess failed: {r.__class__.__name__}: {r}".encode())
                else:
                    rows.append(r)
                    status.append(b"ok")
        s, c = self.spec.image_size, self.spec.preprocess.channels
        z = lambda shape, dt: np.zeros(shape, dt)  # noqa: E731 - a failed row carries zeros
        out = {
            "image": np.stack([r.image if r else z((c, s, s), np.float32) for r in rows]).astype(np.float32),
            "landmarks": np.stack([r.landmarks if r else z((68, 2), np.float32) for r in rows]).astype(np.float32),
            "face_box": np.stack([r.face_box if r else z(4, np.float32) for r in rows]).astype(np.float32),
            "num_faces": np.array([[r.num_faces if r else 0] for r in rows], np.int32),
            "aligned_face": np.stack([r.aligned_face if r else z((s, s, 3), np.uint8) for r in rows]).astype(np.uint8),
            "status": np.array([[t] for t in status], dtype=np.object_),
        }
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in out.items()])

    def execute(self, requests):
        # Every image of every request in this dynamic batch goes through one Preprocessor.many call:
        # with the ONNX landmarker that is one batched call per landmark network for all of them.
        datas = []
        for request in requests:
            try:
                datas.append(self._rows(request))
            except Exception as e:  # noqa: BLE001 - answered below, per request
                datas.append(e)
        try:
            results = iter(self.pre.many([row for d in datas if not isinstance(d, Exception) for row in d]))
        except Exception as e:  # noqa: BLE001 - never let the batch fail as a whole
            results, datas = None, [e] * len(requests)
        responses = []
        for d in datas:
            try:
                if isinstance(d, Exception):
                    raise d
                responses.append(self._response([next(results) for _ in range(len(d))]))
            except AucuesError as e:  # the input's fault: checks, decoding, no face
                responses.append(_error(str(e), True))
            except Exception as e:  # noqa: BLE001 - never let one request fail the batch
                responses.append(_error(f"preprocess failed: {e.__class__.__name__}: {e}", False))
        return responses

    def finalize(self):
        self.pre.close()
