"""config.pbtxt generation for the four models of the `aucues` ensemble, from a ModelSpec.

Each config is a Triton `ModelConfig` protobuf message (tritonclient.grpc.model_config_pb2) written with
protobuf's text format, so every config is valid by construction and reads back with `parse_config`.
Text is deterministic (same spec + options -> same bytes) so the checked-in model_repository/ configs
can be compared with a fresh generation in tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    landmarker: str = "mediapipe"     # "onnx": preprocess calls the served landmark models (serve/landmark_repo.py)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise AucuesError(f"unknown backend '{self.backend}'; choose one of: {', '.join(BACKENDS)}")
        if self.instances < 1:
            raise AucuesError(f"--instances must be >= 1, got {self.instances}")
        if not 1 <= self.max_batch <= 1024:
            raise AucuesError(f"--max-batch must be in 1..1024, got {self.max_batch}")
        if self.max_queue_delay_us < 0:
            raise AucuesError("max queue delay must be >= 0")
        if self.landmarker not in ("mediapipe", "onnx"):
            raise AucuesError(f"unknown landmarker '{self.landmarker}'; choose mediapipe or onnx")

    @property
    def preferred_batch_sizes(self) -> list[int]:
        sizes, b = [], 4
        while b < self.max_batch:
            sizes.append(b)
            b *= 2
        return sizes + [self.max_batch]


def landmark_max_batch(opts: RepoOptions) -> int:
    """Largest batch of the served landmark models: the tiles of one large image already make ~13."""
    return max(opts.max_batch, 64)


def _pb():
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def to_text(cfg) -> str:
    """A ModelConfig message as config.pbtxt text."""
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def parse_config(text: str, where: str = "config.pbtxt"):
    """config.pbtxt text -> ModelConfig message; malformed text is a one-line AucuesError."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, _pb().ModelConfig())
    except text_format.ParseError as e:
        raise AucuesError(f"{where}: not a valid Triton model config: {str(e).splitlines()[0]}") from None


def read_config(path: str | Path):
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AucuesError(f"{path}: cannot read: {e}") from None
    return parse_config(text, str(path))


def _ascii(s: str) -> str:
    if not s.isascii():
        raise AucuesError(f"config strings must be ASCII: {s!r}")
    return s


def _tensor(field, name: str, dtype: str, dims, label: bool = False, ragged: bool = False) -> None:
    t = field.add()
    t.name = _ascii(name)
    t.data_type = _pb().DataType.Value(dtype)
    t.dims.extend(int(d) for d in dims)
    if label:
        t.label_filename = LABELS_FILE
    if ragged:
        t.allow_ragged_batch = True


def _instances(cfg, opts: RepoOptions, kind: str | None) -> None:
    g = cfg.instance_group.add()
    g.count = opts.instances
    if kind:
        g.kind = _pb().ModelInstanceGroup.Kind.Value(kind)


def _param(cfg, key: str, value: str) -> None:
    cfg.parameters[_ascii(key)].string_value = _ascii(value)


def _new(name: str, backend: str | None = None, platform: str | None = None, max_batch: int = 0):
    cfg = _pb().ModelConfig(name=name, max_batch_size=max_batch)
    if backend:
        cfg.backend = backend
    else:
        cfg.platform = platform
    return cfg


# Per-row results (issue 13): every row of a request carries a `status`, "ok" or its own error text;
# a failed row's other outputs are zeros and its label is empty. It flows preprocess -> postprocess ->
# the ensemble's output (the classifier, whatever its backend, just runs on the zero rows).
STATUS = "status"
STATUS_OK = "ok"


def _status(field) -> None:
    _tensor(field, STATUS, "TYPE_STRING", [1])


def _face_outputs(field, spec: ModelSpec) -> None:
    s = spec.image_size
    _tensor(field, "landmarks", "TYPE_FP32", [NUM_LANDMARKS, 2])
    _tensor(field, "face_box", "TYPE_FP32", [4])
    _tensor(field, "num_faces", "TYPE_INT32", [1])
    _tensor(field, "aligned_face", "TYPE_UINT8", [s, s, 3])


def preprocess_message(spec: ModelSpec, opts: RepoOptions):
    s = spec.image_size
    cfg = _new(PREPROCESS, backend="python", max_batch=opts.max_batch)
    # allow_ragged_batch: encoded images differ in length; the Python model handles each request
    # on its own, so requests of any length may share a dynamic batch.
    _tensor(cfg.input, "image_bytes", "TYPE_UINT8", [-1], ragged=True)
    _tensor(cfg.output, "image", "TYPE_FP32", [spec.preprocess.channels, s, s])
    _face_outputs(cfg.output, spec)
    _status(cfg.output)
    # No queue delay: a batch is whatever queued while the instances were busy (fewer IPC round trips,
    # no added latency; faces are found one image at a time anyway).
    cfg.dynamic_batching.max_queue_delay_microseconds = 0
    _instances(cfg, opts, "KIND_CPU")
    _param(cfg, "aucues", spec.to_json())
    if opts.landmarker != "mediapipe":  # absent = MediaPipe, so the checked-in configs stay as they are
        _param(cfg, "landmarker", opts.landmarker)
        _param(cfg, "landmark_max_batch", str(landmark_max_batch(opts)))
    return cfg


def classifier_message(spec: ModelSpec, opts: RepoOptions):
    s, c = spec.image_size, spec.num_classes
    if opts.backend == "python":
        cfg = _new(CLASSIFIER, backend="python", max_batch=opts.max_batch)
    elif opts.backend == "onnxruntime":
        cfg = _new(CLASSIFIER, platform="onnxruntime_onnx", max_batch=opts.max_batch)
        cfg.default_model_filename = "model.onnx"
    else:
        cfg = _new(CLASSIFIER, platform="tensorrt_plan", max_batch=opts.max_batch)
        cfg.default_model_filename = "model.plan"
    _tensor(cfg.input, "image", "TYPE_FP32", [spec.preprocess.channels, s, s])
    _tensor(cfg.output, "logits", "TYPE_FP32", [c], label=True)
    _tensor(cfg.output, "probabilities", "TYPE_FP32", [c], label=True)
    if spec.has_cam:
        _tensor(cfg.output, "cam", "TYPE_FP32", [c, *spec.cam_size])
    for k in sorted(spec.layers):
        _tensor(cfg.output, f"attention_{k}", "TYPE_FP32", list(spec.layers[k]))
    if opts.dynamic_batching:
        cfg.dynamic_batching.preferred_batch_size.extend(opts.preferred_batch_sizes)
        cfg.dynamic_batching.max_queue_delay_microseconds = opts.max_queue_delay_us
    if opts.backend == "python":
        _instances(cfg, opts, "KIND_CPU")
        _param(cfg, "model_file", "model.onnx")
        _param(cfg, "intra_op_threads", str(opts.intra_op_threads))
    elif opts.backend == "onnxruntime":
        # No kind: Triton places instances on the GPUs when there are any, else on the CPU.
        _instances(cfg, opts, None)
        if opts.trt_accelerator:
            acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator.add()
            acc.name = "tensorrt"
            acc.parameters["precision_mode"] = "FP16"
            acc.parameters["max_workspace_size_bytes"] = "1073741824"
    else:
        _instances(cfg, opts, "KIND_GPU")
    return cfg


def _explanation_outputs(field, spec: ModelSpec) -> None:
    """What postprocess returns and the ensemble passes on: the label and the explanations."""
    s, c = spec.image_size, spec.num_classes
    _tensor(field, "label", "TYPE_STRING", [1])
    _tensor(field, "probabilities", "TYPE_FP32", [c], label=True)
    _tensor(field, "topk", "TYPE_STRING", [spec.topk])
    if spec.has_cam:  # APViT: none
        _tensor(field, "cam", "TYPE_FP32", [s, s])
    _tensor(field, "attention", "TYPE_FP32", [s, s])
    _tensor(field, "au_evidence", "TYPE_STRING", [1])
    _tensor(field, "interpretability_score", "TYPE_FP32", [1])
    _status(field)


def postprocess_message(spec: ModelSpec, opts: RepoOptions):
    c, k = spec.num_classes, spec.attention_layer
    cfg = _new(POSTPROCESS, backend="python", max_batch=opts.max_batch)
    _tensor(cfg.input, "logits", "TYPE_FP32", [c])
    _tensor(cfg.input, "probabilities", "TYPE_FP32", [c])
    if spec.has_cam:
        _tensor(cfg.input, "cam", "TYPE_FP32", [c, *spec.cam_size])
    _tensor(cfg.input, f"attention_{k}", "TYPE_FP32", list(spec.layers[k]))
    _tensor(cfg.input, "landmarks", "TYPE_FP32", [NUM_LANDMARKS, 2])
    _status(cfg.input)
    _explanation_outputs(cfg.output, spec)
    cfg.dynamic_batching.max_queue_delay_microseconds = 0
    _instances(cfg, opts, "KIND_CPU")
    _param(cfg, "aucues", spec.to_json())
    return cfg


def _step(cfg, model: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> None:
    st = cfg.ensemble_scheduling.step.add()
    st.model_name = model
    st.model_version = -1
    for k, v in inputs:
        st.input_map[k] = v
    for k, v in outputs:
        st.output_map[k] = v


def ensemble_message(spec: ModelSpec, opts: RepoOptions):
    k = spec.attention_layer
    cfg = _new(ENSEMBLE, platform="ensemble", max_batch=opts.max_batch)
    _tensor(cfg.input, "image_bytes", "TYPE_UINT8", [-1])
    _explanation_outputs(cfg.output, spec)
    _face_outputs(cfg.output, spec)
    _step(cfg, PREPROCESS, [("image_bytes", "image_bytes")],
          [("image", "face_tensor"), ("landmarks", "landmarks"), ("face_box", "face_box"),
           ("num_faces", "num_faces"), ("aligned_face", "aligned_face"), (STATUS, "row_status")])
    cam = [("cam", "raw_cam")] if spec.has_cam else []
    raw = [("logits", "logits"), ("probabilities", "raw_probabilities"), *cam,
           (f"attention_{k}", f"raw_attention_{k}")]
    _step(cfg, CLASSIFIER, [("image", "face_tensor")], raw)
    _step(cfg, POSTPROCESS, raw + [("landmarks", "landmarks"), (STATUS, "row_status")],
          [(n, n) for n in ("label", "probabilities", "topk", *(("cam",) if spec.has_cam else ()), "attention",
                            "au_evidence", "interpretability_score", STATUS)])
    _param(cfg, "aucues", spec.to_json())
    return cfg


def preprocess_config(spec: ModelSpec, opts: RepoOptions) -> str:
    return to_text(preprocess_message(spec, opts))


def classifier_config(spec: ModelSpec, opts: RepoOptions) -> str:
    return to_text(classifier_message(spec, opts))


def postprocess_config(spec: ModelSpec, opts: RepoOptions) -> str:
    return to_text(postprocess_message(spec, opts))


def ensemble_config(spec: ModelSpec, opts: RepoOptions) -> str:
    return to_text(ensemble_message(spec, opts))


def spec_parameter(cfg, where: str = "config.pbtxt") -> ModelSpec:
    """The ModelSpec stored in a config's `aucues` parameter."""
    if "aucues" not in cfg.parameters:
        raise AucuesError(f"{where}: no aucues parameter")
    return ModelSpec.from_json(cfg.parameters["aucues"].string_value)


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
