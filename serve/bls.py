"""BlsRunner: the ONNX landmarker's networks run by the served landmark models, from inside the Triton
preprocess model (Business Logic Scripting), so Triton batches them across requests and places them on
a GPU where there is one; the preprocess model itself only decodes, warps and decodes boxes.

`pb_utils` (triton_python_backend_utils) exists only inside Triton's Python backend: it is passed in,
so this module imports anywhere."""

from __future__ import annotations

import numpy as np

from aucues.errors import AucuesError


class BlsRunner:
    def __init__(self, pb_utils, max_batch: int):
        self.pb = pb_utils
        self.max_batch = int(max_batch)

    def __call__(self, model: str, x: np.ndarray) -> list[np.ndarray]:
        from aucues.onnx_landmarks.models import IO

        in_name, out_names = IO[model][0], list(IO[model][1])
        outs = []
        for start in range(0, x.shape[0], self.max_batch):  # the served model takes <= max_batch rows
            chunk = np.ascontiguousarray(x[start:start + self.max_batch], np.float32)
            kwargs = {}
            if hasattr(self.pb, "PreferredMemory"):  # outputs in CPU memory even from a GPU model
                kwargs["preferred_memory"] = self.pb.PreferredMemory(self.pb.TRITONSERVER_MEMORY_CPU, 0)
            req = self.pb.InferenceRequest(model_name=model, requested_output_names=out_names,
                                           inputs=[self.pb.Tensor(in_name, chunk)], **kwargs)
            resp = req.exec()
            if resp.has_error():
                raise RuntimeError(f"landmark model {model}: {resp.error().message()}")
            outs.append([self.pb.get_output_tensor_by_name(resp, n).as_numpy() for n in out_names])
        if not outs:
            raise AucuesError("empty landmark batch")
        return [np.concatenate(o) for o in zip(*outs)]
