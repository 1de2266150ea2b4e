"""`aucues repository build`: a complete Triton model repository for one exported model.

    OUT/
      preprocess/  config.pbtxt  1/model.py
      classifier/  config.pbtxt  labels.txt  1/model.onnx (+ 1/model.py for backend "python")
                                             | 1/model.plan (backend "tensorrt")
      postprocess/ config.pbtxt  labels.txt  1/model.py
      aucues/      config.pbtxt  labels.txt  1/            (the ensemble)

Configs come from the ONNX metadata (aucues.serve.pbtxt), so shapes and labels always match the model. The
Python models are package data (aucues.serve.triton_models), so a wheel install builds repositories; the
checked-in model_repository/ is the reviewable output of the same generator. The
repository is assembled in a temporary sibling folder and renamed into place, so OUT is never half
written."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aucues.errors import AucuesError
from aucues.io import atomic_write_text
from aucues.serve.pbtxt import (BACKENDS, CLASSIFIER, ENSEMBLE, LABELS_FILE, POSTPROCESS, PREPROCESS, RepoOptions,
                         all_configs, labels_text, read_config, spec_parameter)
from aucues.serve.spec import ModelSpec, spec_from_onnx
from aucues.serve.triton_models import model_source

PYTHON_MODELS = (PREPROCESS, POSTPROCESS)


def checkout_tree() -> Path:
    """The checked-in model_repository/ of a source checkout (only `python -m aucues.serve.repository`
    writes there; building a repository never needs a checkout)."""
    p = Path(__file__).resolve().parent.parent / "model_repository"
    if not p.is_dir():
        raise AucuesError(f"{p}: no model_repository/ here; regenerating it needs an aucues source checkout")
    return p


def check_onnx_io(path: Path, spec: ModelSpec) -> None:
    """The ONNX graph must take `image` (N,C,S,S) (C = the metadata's channels) with a free batch axis and give every output the
    repository declares; a model exported with --outputs logits cannot explain itself."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if [i.name for i in inputs] != ["image"]:
        raise AucuesError(f"{path}: expected one input 'image', found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    s, c = spec.image_size, spec.preprocess.channels
    if len(shape) != 4 or shape[1:] != [c, s, s]:
        raise AucuesError(f"{path}: input 'image' has shape {shape}, expected [N, {c}, {s}, {s}] from its metadata")
    if shape[0] != -1:
        raise AucuesError(f"{path}: the batch axis is fixed at {shape[0]}; re-export with a dynamic batch")
    names = {o.name for o in graph.output}
    missing = [n for n in spec.classifier_outputs() if n not in names]
    if missing:
        raise AucuesError(f"{path}: missing outputs {missing}; export with --outputs all "
                          f"(the server needs logits, probabilities, cam when the model has one, and attention maps)")


def check_verified(path: Path, spec: ModelSpec, allow_unverified: bool = False) -> bool:
    """The exporter marks a model verified=true only when ONNX Runtime matched PyTorch (export/verify.py);
    a failed or skipped verification (e.g. NaN weights: the served model would answer NaN) or a file
    without the record is refused unless the caller opts in. Returns the recorded verdict."""
    verified = spec.metadata.get("verified")
    if verified is True:
        return True
    if allow_unverified:
        return False
    why = ("has no verification record in its metadata" if verified is None
           else "failed or skipped export verification (metadata verified=false)")
    raise AucuesError(f"{path}: {why}; re-export it with verification (`aucues export`) or pass "
                      f"--allow-unverified to serve it anyway")


def _export_checkpoint(checkpoint: Path, dest: Path) -> dict:
    from aucues.export.config import ExportConfig
    from aucues.export.onnx_export import export_onnx

    report = export_onnx(checkpoint, dest, ExportConfig())
    return report.to_dict() if hasattr(report, "to_dict") else dict(report or {})


MARKER = ".aucues-repository"  # written by build_repository: the folder (and its model folders) are ours
OWN_MODELS = (PREPROCESS, CLASSIFIER, POSTPROCESS, ENSEMBLE)
# --landmarker onnx adds these (aucues.serve.landmark_repo); a rebuild without it removes them
LANDMARK_MODELS = ("face_detection_short_range", "face_detection_full_range", "face_landmark")


def _prepare_out(out: Path, force: bool = False) -> None:
    """Refuse a non-empty OUT that build_repository did not write (no marker, or files beside its own
    model folders) unless `force`; even then only the model folders it writes are ever replaced."""
    if out.is_symlink() and not out.exists():
        raise AucuesError(f"{out}: is a dangling symlink")
    if out.exists():
        if not out.is_dir():
            raise AucuesError(f"{out}: exists and is not a directory")
        entries = {e.name for e in out.iterdir()}
        ours = MARKER in entries or (entries <= set(OWN_MODELS + LANDMARK_MODELS) and (out / ENSEMBLE / "config.pbtxt").exists())
        if entries and not ours and not force:
            raise AucuesError(f"{out}: exists, is not empty and is not an aucues repository (not written by `aucues repository build`); "
                              f"choose another --out or pass --force (which replaces only "
                              f"{', '.join(OWN_MODELS)} and keeps everything else)")


def _swap_in(tmp: Path, out: Path) -> None:
    """Move the freshly built model folders into OUT, one rename each; other entries of OUT stay."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    try:
        for name in OWN_MODELS + LANDMARK_MODELS + (MARKER,):
            if (out / name).exists() or (out / name).is_symlink():
                (out / name).rename(old / name)
            if (tmp / name).exists():  # landmark models only with --landmarker onnx
                (tmp / name).rename(out / name)
    finally:
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def build_repository(out: str | Path, *, onnx: str | Path | None = None, checkpoint: str | Path | None = None,
                     backend: str = "python", plan: str | Path | None = None, instances: int = 2,
                     max_batch: int = 32, trt_accelerator: bool = False, max_queue_delay_us: int = 2000,
                     dynamic_batching: bool = True, force: bool = False, allow_unverified: bool = False,
                     landmarker: str = "mediapipe") -> dict:
    """Write the repository; returns a report (paths, backend, model shapes). An existing OUT that
    this function did not write is refused unless `force`; only its own model folders are replaced.
    An ONNX whose export verification failed, was skipped or is not recorded is refused unless
    `allow_unverified`."""
    if (onnx is None) == (checkpoint is None):
        raise AucuesError("give exactly one of --checkpoint or --onnx")
    if backend not in BACKENDS:
        raise AucuesError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    if backend == "tensorrt" and plan is None:
        raise AucuesError("--backend tensorrt needs --plan MODEL.plan (a TensorRT engine built from the ONNX)")
    if plan is not None and backend != "tensorrt":
        raise AucuesError("--plan is only used with --backend tensorrt")
    if plan is not None and not Path(plan).is_file():
        raise AucuesError(f"{plan}: no such TensorRT plan file")
    opts = RepoOptions(backend=backend, instances=int(instances), max_batch=int(max_batch),
                       trt_accelerator=trt_accelerator, max_queue_delay_us=int(max_queue_delay_us),
                       dynamic_batching=bool(dynamic_batching), landmarker=landmarker)
    out = Path(out).resolve()
    _prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        report: dict = {}
        onnx_dst = tmp / CLASSIFIER / "1" / "model.onnx"
        onnx_dst.parent.mkdir(parents=True)
        if checkpoint is not None:
            report["export"] = _export_checkpoint(Path(checkpoint), onnx_dst)
        else:
            if not Path(onnx).is_file():
                raise AucuesError(f"{onnx}: no such ONNX file")
            shutil.copyfile(onnx, onnx_dst)
        spec = spec_from_onnx(onnx_dst)
        check_onnx_io(onnx_dst, spec)
        report["verified"] = check_verified(Path(onnx) if onnx is not None else Path(checkpoint), spec,
                                            allow_unverified)
        if backend == "tensorrt":
            shutil.copyfile(plan, tmp / CLASSIFIER / "1" / "model.plan")
            onnx_dst.unlink()  # the plan replaces it; keep the metadata in the configs
        for name in PYTHON_MODELS + ((CLASSIFIER,) if backend == "python" else ()):
            (tmp / name / "1").mkdir(parents=True, exist_ok=True)
            atomic_write_text(tmp / name / "1" / "model.py", model_source(name))
        (tmp / ENSEMBLE / "1").mkdir(parents=True, exist_ok=True)
        for name, text in all_configs(spec, opts).items():
            atomic_write_text(tmp / name / "config.pbtxt", text)
        landmark_models = []
        if opts.landmarker == "onnx":  # the landmark networks as models the preprocess calls (BLS)
            from aucues.serve.landmark_repo import write_landmark_models

            landmark_models = write_landmark_models(tmp, opts)
        for name in (CLASSIFIER, POSTPROCESS, ENSEMBLE):
            atomic_write_text(tmp / name / LABELS_FILE, labels_text(spec))
        atomic_write_text(tmp / MARKER, "written by `aucues repository build`; it replaces only "
                                        + ", ".join(OWN_MODELS) + " here\n")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.update({
        "repository": str(out),
        "backend": backend,
        "models": [PREPROCESS, CLASSIFIER, POSTPROCESS, ENSEMBLE] + landmark_models,
        "landmarker": opts.landmarker,
        "image_size": spec.image_size,
        "class_names": list(spec.class_names),
        "layers": {str(k): list(v) for k, v in sorted(spec.layers.items())},
        "cam_size": list(spec.cam_size) if spec.has_cam else None,  # None: no CAM (APViT)
        "instances": opts.instances,
        "max_batch": opts.max_batch,
        # a QDQ INT8 graph (`export --int8`) is verified against its FP32 one (docs/export.md)
        "int8": bool(spec.metadata.get("int8")),
    })
    return report


def read_repository_spec(repository: str | Path) -> ModelSpec:
    """The ModelSpec a built repository was generated from (the ensemble's `aucues` parameter, read
    through the ModelConfig protobuf)."""
    cfg = Path(repository) / ENSEMBLE / "config.pbtxt"
    if not cfg.exists():
        raise AucuesError(f"{repository}: not an aucues model repository (no {ENSEMBLE}/config.pbtxt); "
                          "build one with `aucues repository build`")
    return spec_parameter(read_config(cfg), str(cfg))


def default_spec() -> ModelSpec:
    """The spec of the default model (ModelConfig() defaults: ResNet50, large maps, 7 classes, 224 px,
    layers 1-5), taken from the model itself rather than retyped."""
    from aucues.train.models import build_model
    from aucues.train.models.base import ModelConfig

    model = build_model(ModelConfig())
    layers = model.layer_shapes(model.preprocess.image_size)
    return ModelSpec(preprocess=model.preprocess, layers={k: layers[k] for k in model.preprocess.attention_layers},
                     cam_size=layers[5])


def reference_files(spec: ModelSpec | None = None) -> dict[str, str]:
    """Relative path -> text of every generated file of the checked-in model_repository/."""
    spec = spec or default_spec()
    files = {f"{name}/config.pbtxt": text for name, text in all_configs(spec, RepoOptions()).items()}
    for name in (CLASSIFIER, POSTPROCESS, ENSEMBLE):
        files[f"{name}/{LABELS_FILE}"] = labels_text(spec)
    for name in PYTHON_MODELS + (CLASSIFIER,):
        files[f"{name}/1/model.py"] = model_source(name)
    return files


def write_reference_configs(root: str | Path | None = None) -> list[Path]:
    """Regenerate model_repository/'s configs, labels and Python models for the default model."""
    root = Path(root) if root else checkout_tree()
    written = []
    for rel, text in reference_files().items():
        atomic_write_text(root / rel, text)
        written.append(root / rel)
    return written


if __name__ == "__main__":  # python -m aucues.serve.repository: regenerate the checked-in configs
    for p in write_reference_configs():
        print(p)
