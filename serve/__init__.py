"""Serve stage: Triton model repository (preprocess -> classifier -> postprocess ensemble), a
tritonserver launcher for the nvidia-pytriton wheel's binary, and the predict client.

Light to import; onnxruntime, tritonclient and MediaPipe load inside the functions that need them."""

from serve.pbtxt import BACKENDS, RepoOptions
from serve.spec import ModelSpec, read_onnx_metadata, spec_from_onnx

__all__ = ["BACKENDS", "ModelSpec", "RepoOptions", "read_onnx_metadata", "spec_from_onnx"]
