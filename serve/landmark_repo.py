"""The landmark networks as Triton models (`aucues repository build --landmarker onnx`).

Three models beside the ensemble, named as aucues.onnx_landmarks.models.IO names them
(face_detection_short_range, face_detection_full_range, face_landmark), each `1/model.onnx` converted
from the mediapipe wheel. The preprocess model calls them by BLS (aucues.serve.bls), so they are not
ensemble steps: the number of calls per image depends on the image (tiles, faces).
- backend python: `1/model.py` runs ONNX Runtime (the wheel's tritonserver has no onnxruntime backend);
- backend onnxruntime / tensorrt: platform onnxruntime_onnx (on a GPU host with --trt-accelerator,
  TensorRT FP16 inside ORT), since the classifier's plan does not cover these networks.
Dynamic batching merges the BLS calls of concurrent preprocess instances."""

from __future__ import annotations

import shutil
from pathlib import Path

from aucues.io import atomic_write_text
from aucues.serve.pbtxt import RepoOptions, _instances, _new, _param, _tensor, landmark_max_batch, to_text

LANDMARK_QUEUE_DELAY_US = 500  # short: a preprocess instance waits on each call


def landmark_model_names() -> tuple[str, ...]:
    from aucues.onnx_landmarks.models import IO

    return tuple(IO)


def landmark_message(name: str, opts: RepoOptions):
    from aucues.onnx_landmarks.models import IO

    in_name, out_names, in_shape, out_shapes = IO[name]
    max_batch = landmark_max_batch(opts)
    if opts.backend == "python":
        cfg = _new(name, backend="python", max_batch=max_batch)
    else:
        cfg = _new(name, platform="onnxruntime_onnx", max_batch=max_batch)
        cfg.default_model_filename = "model.onnx"
    _tensor(cfg.input, in_name, "TYPE_FP32", in_shape)
    for o, shape in zip(out_names, out_shapes):
        _tensor(cfg.output, o, "TYPE_FP32", shape)
    cfg.dynamic_batching.max_queue_delay_microseconds = LANDMARK_QUEUE_DELAY_US
    if opts.backend == "python":
        _instances(cfg, opts, "KIND_CPU")
        _param(cfg, "model_file", "model.onnx")
        _param(cfg, "intra_op_threads", str(opts.intra_op_threads))
    else:
        _instances(cfg, opts, None)
        if opts.trt_accelerator:
            acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator.add()
            acc.name = "tensorrt"
            acc.parameters["precision_mode"] = "FP16"
    return cfg


def write_landmark_models(root: Path, opts: RepoOptions) -> list[str]:
    """Write the three model folders under root (a repository being assembled); returns their names."""
    from aucues.onnx_landmarks.models import onnx_path
    from aucues.serve.triton_models import model_source

    names = landmark_model_names()
    for name in names:
        (root / name / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path(name), root / name / "1" / "model.onnx")
        if opts.backend == "python":
            atomic_write_text(root / name / "1" / "model.py", model_source("landmark_model"))
        atomic_write_text(root / name / "config.pbtxt", to_text(landmark_message(name, opts)))
    return list(names)
