"""config.pbtxt generation for the four models of the `aucues` ensemble, from a ModelSpec.

Text is produced deterministically (same spec + options -> same bytes) so the checked-in
model_repository/ configs can be compared with a fresh generation in tests."""

from __future__ import annotations

from dataclasses import dataclass

from aucues.errors import AucuesError
from aucues.serve.spec import NUM_LANDMARKS, ModelSpec

BACKENDS = ("python", "onnxruntime", "tensorrt")
LABELS_FILE = "labels.txt"
ENSEMBLE = "aucues"
PREPROCESS, CLASSIFIER, POSTPROCESS = "preprocess", "classifier", "postprocess"


@dataclass(frozen=True)
class RepoOptions:
    backend: str = "python"
    # instances of each model (instance_group count). 2: on the 2-core reference machine one instance
    # per model serialised MediaPipe; two raised Triton/in-process throughput at concurrency 8 from
    # 0.66x to 0.85x (docs/benchmarks.md)
    instances: int = 2
    max_batch: int = 32
    max_queue_delay_us: int = 2000    # classifier: wait this long for a fuller batch
    dynamic_batching: bool = True     # classifier; on a small CPU host batching may not pay (docs/benchmarks.md)
    trt_accelerator: bool = False     # onnxruntime backend: TensorRT execution accelerator (GPU)
    intra_op_threads: int = 0         # python classifier: ONNX Runtime threads (0 = its default)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise AucuesError(f"unknown backend '{self.backend}'; choose one of: {', '.join(BACKENDS)}")
        if self.instances < 1:
            raise AucuesError(f"--instances must be >= 1, got {self.instances}")
        if not 1 <= self.max_batch <= 1024:
            raise AucuesError(f"--max-batch must be in 1..1024, got {self.max_batch}")
        if self.max_queue_delay_us < 0:
            raise AucuesError("max queue delay must be >= 0")

    @property
    def preferred_batch_sizes(self) -> list[int]:
        sizes, b = [], 4
        while b < self.max_batch:
            sizes.append(b)
            b *= 2
        return sizes + [self.max_batch]


def _str(s: str) -> str:
    """A protobuf text-format string literal."""
    if not s.isascii():
        raise AucuesError(f"config strings must be ASCII: {s!r}")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dims(dims) -> str:
    return "[ " + ", ".join(str(int(d)) for d in dims) + " ]"


def _tensor(name: str, dtype: str, dims, extra: str = "") -> str:
    body = f"    name: {_str(name)}\n    data_type: {dtype}\n    dims: {_dims(dims)}\n"
    if extra:
        body += f"    {extra}\n"
    return "  {\n" + body + "  }"


def _block(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]\n"


def _instances(opts: RepoOptions, kind: str | None) -> str:
    k = f"\n    kind: {kind}" if kind else ""
    return f"instance_group [\n  {{\n    count: {opts.instances}{k}\n  }}\n]\n"


def _param(key: str, value: str) -> str:
    return f"parameters {{\n  key: {_str(key)}\n  value: {{ string_value: {_str(value)} }}\n}}\n"


def _header(name: str, backend: str | None = None, platform: str | None = None, max_batch: int = 0) -> str:
    s = f"name: {_str(name)}\n"
    s += f"backend: {_str(backend)}\n" if backend else f"platform: {_str(platform)}\n"
    return s + f"max_batch_size: {max_batch}\n"


def _face_outputs(spec: ModelSpec) -> list[str]:
    s = spec.image_size
    return [
        _tensor("landmarks", "TYPE_FP32", [NUM_LANDMARKS, 2]),
        _tensor("face_box", "TYPE_FP32", [4]),
        _tensor("num_faces", "TYPE_INT32", [1]),
        _tensor("aligned_face", "TYPE_UINT8", [s, s, 3]),
    ]


def preprocess_config(spec: ModelSpec, opts: RepoOptions) -> str:
    s = spec.image_size
    # allow_ragged_batch: encoded images differ in length; the Python model handles each request
    # on its own, so requests of any length may share a dynamic batch.
    text = _header(PREPROCESS, backend="python", max_batch=opts.max_batch)
    text += _block("input", [_tensor("image_bytes", "TYPE_UINT8", [-1], "allow_ragged_batch: true")])
    text += _block("output", [_tensor("image", "TYPE_FP32", [3, s, s])] + _face_outputs(spec))
    # No queue delay: a batch is whatever queued while the instances were busy (fewer IPC round trips,
    # no added latency; faces are found one image at a time anyway).
    text += "dynamic_batching {\n  max_queue_delay_microseconds: 0\n}\n"
    text += _instances(opts, "KIND_CPU")
    return text + _param("aucues", spec.to_json())


def _classifier_io(spec: ModelSpec) -> tuple[list[str], list[str]]:
    s, c = spec.image_size, spec.num_classes
    inputs = [_tensor("image", "TYPE_FP32", [3, s, s])]
    outputs = [
        _tensor("logits", "TYPE_FP32", [c], f"label_filename: {_str(LABELS_FILE)}"),
        _tensor("probabilities", "TYPE_FP32", [c], f"label_filename: {_str(LABELS_FILE)}"),
        _tensor("cam", "TYPE_FP32", [c, *spec.cam_size]),
    ] + [_tensor(f"attention_{k}", "TYPE_FP32", list(spec.layers[k])) for k in sorted(spec.layers)]
    return inputs, outputs


def classifier_config(spec: ModelSpec, opts: RepoOptions) -> str:
    inputs, outputs = _classifier_io(spec)
    if opts.backend == "python":
        text = _header(CLASSIFIER, backend="python", max_batch=opts.max_batch)
    elif opts.backend == "onnxruntime":
        text = _header(CLASSIFIER, platform="onnxruntime_onnx", max_batch=opts.max_batch)
        text += 'default_model_filename: "model.onnx"\n'
    else:
        text = _header(CLASSIFIER, platform="tensorrt_plan", max_batch=opts.max_batch)
        text += 'default_model_filename: "model.plan"\n'
    text += _block("input", inputs) + _block("output", outputs)
    if opts.dynamic_batching:
        pref = ", ".join(str(b) for b in opts.preferred_batch_sizes)
        text += (f"dynamic_batching {{\n  preferred_batch_size: [ {pref} ]\n"
                 f"  max_queue_delay_microseconds: {opts.max_queue_delay_us}\n}}\n")
    if opts.backend == "python":
        text += _instances(opts, "KIND_CPU")
        text += _param("model_file", "model.onnx") + _param("intra_op_threads", str(opts.intra_op_threads))
    elif opts.backend == "onnxruntime":
        # No kind: Triton places instances on the GPUs when there are any, else on the CPU.
        text += _instances(opts, None)
        if opts.trt_accelerator:
            text += ("optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n"
                     "      {\n        name: \"tensorrt\"\n"
                     "        parameters { key: \"precision_mode\" value: \"FP16\" }\n"
                     "        parameters { key: \"max_workspace_size_bytes\" value: \"1073741824\" }\n"
                     "      }\n    ]\n  }\n}\n")
    else:
        text += _instances(opts, "KIND_GPU")
    return text


def _postprocess_io(spec: ModelSpec) -> tuple[list[str], list[str]]:
    c, k = spec.num_classes, spec.attention_layer
    inputs = [
        _tensor("logits", "TYPE_FP32", [c]),
        _tensor("probabilities", "TYPE_FP32", [c]),
        _tensor("cam", "TYPE_FP32", [c, *spec.cam_size]),
        _tensor(f"attention_{k}", "TYPE_FP32", list(spec.layers[k])),
        _tensor("landmarks", "TYPE_FP32", [NUM_LANDMARKS, 2]),
    ]
    return inputs, _explanation_outputs(spec)


def _explanation_outputs(spec: ModelSpec) -> list[str]:
    """What postprocess returns and the ensemble passes on: the label and the explanations."""
    s, c = spec.image_size, spec.num_classes
    return [
        _tensor("label", "TYPE_STRING", [1]),
        _tensor("probabilities", "TYPE_FP32", [c], f"label_filename: {_str(LABELS_FILE)}"),
        _tensor("topk", "TYPE_STRING", [spec.topk]),
        _tensor("cam", "TYPE_FP32", [s, s]),
        _tensor("attention", "TYPE_FP32", [s, s]),
        _tensor("au_evidence", "TYPE_STRING", [1]),
        _tensor("interpretability_score", "TYPE_FP32", [1]),
    ]


def postprocess_config(spec: ModelSpec, opts: RepoOptions) -> str:
    inputs, outputs = _postprocess_io(spec)
    text = _header(POSTPROCESS, backend="python", max_batch=opts.max_batch)
    text += _block("input", inputs) + _block("output", outputs)
    text += "dynamic_batching {\n  max_queue_delay_microseconds: 0\n}\n"
    text += _instances(opts, "KIND_CPU")
    return text + _param("aucues", spec.to_json())


def _map(kind: str, pairs: list[tuple[str, str]]) -> str:
    return "".join(f"      {kind} {{ key: {_str(k)} value: {_str(v)} }}\n" for k, v in pairs)


def _step(model: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> str:
    return ("    {\n      model_name: " + _str(model) + "\n      model_version: -1\n"
            + _map("input_map", inputs) + _map("output_map", outputs) + "    }")


def ensemble_config(spec: ModelSpec, opts: RepoOptions) -> str:
    k = spec.attention_layer
    text = _header(ENSEMBLE, platform="ensemble", max_batch=opts.max_batch)
    text += _block("input", [_tensor("image_bytes", "TYPE_UINT8", [-1])])
    outputs = _explanation_outputs(spec) + _face_outputs(spec)
    text += _block("output", outputs)
    pre = _step(PREPROCESS, [("image_bytes", "image_bytes")],
                [("image", "face_tensor"), ("landmarks", "landmarks"), ("face_box", "face_box"),
                 ("num_faces", "num_faces"), ("aligned_face", "aligned_face")])
    cls_out = [("logits", "logits"), ("probabilities", "raw_probabilities"), ("cam", "raw_cam"),
               (f"attention_{k}", f"raw_attention_{k}")]
    cls = _step(CLASSIFIER, [("image", "face_tensor")], cls_out)
    post = _step(POSTPROCESS,
                 [("logits", "logits"), ("probabilities", "raw_probabilities"), ("cam", "raw_cam"),
                  (f"attention_{k}", f"raw_attention_{k}"), ("landmarks", "landmarks")],
                 [(n, n) for n in ("label", "probabilities", "topk", "cam", "attention", "au_evidence",
                                   "interpretability_score")])
    text += "ensemble_scheduling {\n  step [\n" + ",\n".join([pre, cls, post]) + "\n  ]\n}\n"
    return text + _param("aucues", spec.to_json())


def labels_text(spec: ModelSpec) -> str:
    return "".join(f"{n}\n" for n in spec.class_names)


def all_configs(spec: ModelSpec, opts: RepoOptions) -> dict[str, str]:
    """Model name -> config.pbtxt text."""
    return {
        PREPROCESS: preprocess_config(spec, opts),
        CLASSIFIER: classifier_config(spec, opts),
        POSTPROCESS: postprocess_config(spec, opts),
        ENSEMBLE: ensemble_config(spec, opts),
    }
