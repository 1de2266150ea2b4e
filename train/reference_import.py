"""`aucues import reference`: one of the paper's released models (docs/method.md §11) as an aucues
checkpoint (docs/import.md).

A released model folder holds `config_model.yaml` (the run's arguments) and `model.pt`
({"encoder": state_dict, "classification_head": state_dict}). Everything is read and checked first
(YAML keys and values, the method's converter, every key and shape, a strict load into the built
model); only then is the checkpoint written, atomically, so bad input never leaves a file behind."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aucues.errors import AucuesError
from aucues.train.reference_methods import ENCODER_WIDTH, ReferenceSpec, arch_encoders, method_converter
from aucues.preprocessing import LAYERS

CONFIG_FILE = "config_model.yaml"
WEIGHTS_FILE = "model.pt"
REQUIRED_KEYS = ("method", "spatial_pooling", "num_classes", "dataset", "crop_size", "model",
                 "align_atten_to_heatmap")
MODEL_KEYS = ("arch", "encoder_name", "encoder_weights", "large_maps", "support_background")
# method options of the reference's run arguments (docs/method.md §11); train/methods validates them
METHOD_OPTION_KEYS = ("wc_modalities", "wc_kmax", "wc_kmin", "wc_alpha", "acol_drop_threshold", "prm_ks", "prm_st",
                      "adl_drop_rate", "adl_drop_threshold")
STD_ARCH = "STDClassifier"  # the reference's CNN classifier (encoder + pooling head)


def _bool(value, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise AucuesError(f"{where}: {key} must be true or false, got {value!r}")


def _layers(value, where: str) -> tuple[int, ...]:
    """The reference writes layers as '5' or '5-4' (its CLI joins them with '-'); accept ints/lists."""
    items = value if isinstance(value, (list, tuple)) else str(value).replace(",", "-").split("-")
    try:
        out = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        out = ()
    if not out or any(l not in LAYERS for l in out):
        raise AucuesError(f"{where}: align_atten_to_heatmap_layers must be layers among 1..5, got {value!r}")
    return out


def _none(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "None", "none", "null"))


def read_spec(folder) -> ReferenceSpec:
    """config_model.yaml -> ReferenceSpec (missing keys, foreign YAML, bad values: one line)."""
    import yaml

    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise AucuesError(f"{folder}: no such folder (expected a released model folder holding "
                          f"{CONFIG_FILE} and {WEIGHTS_FILE})")
    missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / n).is_file()]
    if missing:
        raise AucuesError(f"{folder}: not a released model folder (missing {' and '.join(missing)})")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise AucuesError(f"{path}: not valid YAML") from None
    if not isinstance(cfg, dict):
        raise AucuesError(f"{path}: not the reference's config (expected a mapping of run arguments)")
    absent = [k for k in REQUIRED_KEYS if k not in cfg]
    if absent:
        raise AucuesError(f"{path}: not the reference's config_model.yaml (missing {', '.join(absent)})")
    model = cfg["model"]
    if not isinstance(model, dict) or [k for k in MODEL_KEYS if k not in model]:
        have = sorted(model) if isinstance(model, dict) else type(model).__name__
        raise AucuesError(f"{path}: 'model' must hold {', '.join(MODEL_KEYS)} (found {have})")
    where = str(path)
    arch = str(model["arch"])
    encoders = tuple(ENCODER_WIDTH) if arch == STD_ARCH else arch_encoders(arch)
    if not encoders:
        raise AucuesError(f"{where}: model arch '{model['arch']}' (method {cfg['method']}) is not supported "
                          f"yet; only {STD_ARCH} models import")
    encoder = str(model["encoder_name"])
    if encoder not in encoders:
        raise AucuesError(f"{where}: encoder '{encoder}' is not supported (one of {', '.join(encoders)})")
    if _bool(model["support_background"], "model.support_background", where):
        raise AucuesError(f"{where}: support_background=True (an extra background class) is not supported")
    if not _none(cfg.get("dense_dims")):
        raise AucuesError(f"{where}: dense_dims {cfg['dense_dims']!r} (dense layers before the head) is not supported")
    try:
        num_classes, crop = int(cfg["num_classes"]), int(cfg["crop_size"])
    except (TypeError, ValueError):
        raise AucuesError(f"{where}: num_classes and crop_size must be integers") from None
    if num_classes not in (7, 8):
        raise AucuesError(f"{where}: num_classes must be 7 (or 8 with Contempt), got {num_classes}")
    if crop < 32:
        raise AucuesError(f"{where}: crop_size must be >= 32, got {crop}")
    au, layers, lam = read_au_options(cfg, where, default_layers="5")
    return ReferenceSpec(
        method=str(cfg["method"]), pooling=str(cfg["spatial_pooling"]), dataset=str(cfg["dataset"]),
        encoder=encoder, large_maps=_bool(model["large_maps"], "model.large_maps", where),
        num_classes=num_classes, crop_size=crop, au_loss=au, au_layers=layers, au_lambda=lam,
        self_attention=au and _bool(cfg.get("align_atten_to_heatmap_use_self_atten", False),
                                    "align_atten_to_heatmap_use_self_atten", where),
        heatmap_type=str(cfg.get("align_atten_to_heatmap_type_heatmap", "")),
        valid_freq=_float_or_none(cfg.get("valid_freq_mb")),
        options={k: cfg[k] for k in METHOD_OPTION_KEYS if k in cfg and not _none(cfg[k])}, arch=arch)


def read_au_options(cfg: dict, where: str, default_layers: str) -> tuple[bool, tuple[int, ...], float]:
    """The run's AU-loss arguments: (align_atten_to_heatmap, its layers, its lambda)."""
    au = _bool(cfg["align_atten_to_heatmap"], "align_atten_to_heatmap", where)
    try:
        layers = _layers(cfg.get("align_atten_to_heatmap_layers", default_layers), where)
    except AucuesError:
        if au:
            raise
        layers = ()  # without the AU loss the option is unused: whatever it holds does not matter
    try:
        lam = float(cfg.get("align_atten_to_heatmap_lambda", 0.0))
    except (TypeError, ValueError):
        raise AucuesError(f"{where}: align_atten_to_heatmap_lambda must be a number") from None
    return au, layers, lam


def _float_or_none(v) -> float | None:
    try:
        return None if _none(v) else float(v)
    except (TypeError, ValueError):
        return None


def read_weights(folder, whole: bool = False, what: str = "the whole model's state dict") -> tuple[dict, dict]:
    """model.pt -> (encoder state dict, classification_head state dict), read with weights_only;
    `whole` (TS-CAM, APViT): model.pt is `what`, the whole model's state dict -> (it, {})."""
    import torch

    path = Path(folder) / WEIGHTS_FILE
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise AucuesError(f"{path}: not a readable torch file ({msg})") from None
    if whole:
        if not isinstance(data, dict) or {"encoder", "classification_head"} & set(data):
            found = sorted(map(str, data))[:4] if isinstance(data, dict) else type(data).__name__
            raise AucuesError(f"{path}: expected {what} (found {found})")
        data = {"encoder": data, "classification_head": {}}
    elif not isinstance(data, dict) or not {"encoder", "classification_head"} <= set(data):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise AucuesError(f"{path}: expected a dict with 'encoder' and 'classification_head' state dicts "
                          f"(found {found})")
    parts = []
    for name in ("encoder",) if whole else ("encoder", "classification_head"):
        sd = data[name]
        if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            if whole:
                raise AucuesError(f"{path}: expected {what} of tensors (found {sorted(map(str, sd))[:4]})")
            raise AucuesError(f"{path}: '{name}' is not a state dict of tensors")
        if any(str(k).startswith("module.") for k in sd):  # a DDP-wrapped save: the keys are the same after it
            sd = {str(k)[len("module."):] if str(k).startswith("module.") else k: v for k, v in sd.items()}
        parts.append(sd)
    return (parts[0], {}) if whole else (parts[0], parts[1])


def convert(folder):
    """A released model folder -> (aucues FERModel in eval mode, ReferenceSpec, aucues CAM name).
    Raises AucuesError before anything is written when any part does not fit."""
    import torch

    from aucues.labels import class_names
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.models import ModelConfig, build_model
    from aucues.train.reference_apvit import convert_apvit, is_apvit
    from aucues.train.reference_methods import check_keys

    if is_apvit(folder):  # a whole-model state dict of the APViT architecture (train/reference_apvit.py)
        return convert_apvit(folder)
    spec = read_spec(folder)
    conv = method_converter(spec.method)
    if spec.pooling != conv.pooling:
        raise AucuesError(f"{Path(folder) / CONFIG_FILE}: method {spec.method} with spatial_pooling "
                          f"'{spec.pooling}' (expected {conv.pooling})")
    if spec.arch != conv.arch:
        raise AucuesError(f"{Path(folder) / CONFIG_FILE}: method {spec.method} with model arch '{spec.arch}' "
                          f"(expected {conv.arch})")
    encoder, head = read_weights(folder, whole=spec.arch != STD_ARCH)
    result = conv.convert(encoder, head, spec)
    # a dict, so that the converter's fields may replace these (TS-CAM: backbone "tscam", not the encoder)
    mc = ModelConfig(**{"backbone": spec.encoder, "num_classes": spec.num_classes, "large_maps": spec.large_maps,
                        "weights": "random",
                        "self_attention_layers": spec.au_layers if spec.self_attention else (),
                        **result.model_fields})
    # Image geometry (mean/std, crop template) stays PreprocessConfig's defaults: they are the
    # reference's eval input (docs/method.md §9-10); only the size comes from the run.
    pre = PreprocessConfig(image_size=spec.crop_size, class_names=class_names(spec.num_classes),
                           codebook="reference")
    model = build_model(mc, pre)
    own = model.state_dict()
    state = dict(result.state)
    for k, v in own.items():  # counters only the training loop reads; older torch saves lacked them
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    check_keys(state, {k: tuple(v.shape) for k, v in own.items()},
               f"{Path(folder) / WEIGHTS_FILE}: the {spec.method} {spec.encoder} state dict")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise AucuesError(f"{Path(folder) / WEIGHTS_FILE}: non-finite values in {', '.join(bad[:3])}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    if result.au_layers is not None:  # the converter renumbered the aligned layers (TS-CAM)
        spec = dataclasses.replace(spec, aucues_au_layers=result.au_layers)
    return model.eval(), spec, result.cam


def source_info(folder, spec: ReferenceSpec, cam: str) -> dict:
    name = Path(folder).name
    cp = "best" if "cp_best" in name else "last" if "cp_last" in name else "unknown"
    return {"kind": "reference", "folder": str(Path(folder).resolve()), "method": spec.method,
            "pooling": spec.pooling, "dataset": spec.dataset, "encoder": spec.encoder,
            "large_maps": spec.large_maps, "au_loss": spec.au_loss, "au_layers": list(spec.au_layers),
            "au_lambda": spec.au_lambda, "self_attention": spec.self_attention,
            "heatmap_type": spec.heatmap_type, "checkpoint": cp, "cam_method": cam}


def import_reference(folder, out) -> dict:
    """Convert `folder` and write the aucues checkpoint `out` (atomically, only after every check
    passed) -> a summary dict."""
    from aucues.train.checkpoint import save_checkpoint

    out = Path(out)
    if out.is_dir():
        raise AucuesError(f"{out}: is a directory, expected a checkpoint file path (.pt)")
    model, spec, cam = convert(folder)
    src = source_info(folder, spec, cam)
    layers = spec.au_layers if spec.aucues_au_layers is None else spec.aucues_au_layers
    au = {"loss": spec.au_loss, "layers": list(layers), "lambda": spec.au_lambda,
          "map_kind": "class", "codebook": "reference"}
    save_checkpoint(out, model, extra={
        "source": f"reference model {spec.dataset} {spec.encoder} {spec.method} "
                  f"({'with' if spec.au_loss else 'without'} AU loss) from {Path(folder).name}",
        "reference": src, "au": au,
        # the reference validates on the test split (docs/method.md §9): its models were selected there
        "selection": {"select_on": "test", "valid_every_fraction": spec.valid_freq}})
    return {"out": str(out), **src, "parameters": sum(p.numel() for p in model.parameters()),
            "image_size": spec.crop_size}
