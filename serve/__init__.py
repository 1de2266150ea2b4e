"""Serve stage: Triton model repository (preprocess -> classifier -> postprocess ensemble), a
tritonserver launcher for the nvidia-pytriton wheel's binary, and the predict client.

Light to import; onnxruntime, tritonclient and MediaPipe load inside the functions that need them."""

if __name__ != "aucues.serve":  # the folder is installed as aucues.serve; never as a top-level `serve`
    raise ImportError("the serve/ folder is the aucues.serve package: `import aucues.serve` "
                      "(installed by `pip install -e .` or the aucues wheel)")


from aucues.serve.pbtxt import BACKENDS, RepoOptions
from aucues.serve.spec import ModelSpec, read_onnx_metadata, spec_from_onnx

__all__ = ["BACKENDS", "ModelSpec", "RepoOptions", "read_onnx_metadata", "spec_from_onnx"]
