"""Typed training configuration: dataclass defaults (the paper's recipe, docs/method.md §9) <- YAML file
<- CLI flags. The resolved config is saved as RUN_DIR/config.yaml beside the run's outputs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from aucues.errors import AucuesError
from aucues.preprocessing import DEFAULT_IMAGE_SIZE, LAYERS

DATASETS = ("rafdb", "affectnet", "folder", "synthetic")
MAP_KINDS = ("class", "generic", "per_class", "landmarks")
CODEBOOKS = ("paper", "reference")
DEVICES = ("auto", "cpu", "cuda")
SELECT_ON = ("val", "test")  # aucues.train.protocol


@dataclass
class TrainConfig:
    """Everything a run depends on. Defaults are the paper's ResNet50 recipe (§9)."""

    # data
    data: str = ""                       # dataset root (or a CSV file for --dataset folder)
    dataset: str = "rafdb"
    num_classes: int = 7                 # 8 keeps AffectNet's Contempt
    val_fraction: float = 0.1            # stratified hold-out of train for model selection
    select_on: str = "val"               # "val" (held out, clean) | "test" (the reference's protocol, §9)
    valid_every_fraction: float = 0.0    # > 0: also validate every max(int(f x batches), 1) steps (§9)
    limit_train: int | None = None       # first N training samples (tests, smoke runs)
    num_workers: int = 2
    augment: bool = True                 # §9 train augmentation (off: eval transform for train too)
    # model
    backbone: str | None = None          # None: the method's own architecture (tscam, apvit), else resnet50
    large_maps: bool = True              # §5: layer3/layer4 stride 1 (dilated)
    weights: str | None = None           # local pretrained weights file (nothing downloads)
    init: str | None = None              # start from this aucues checkpoint (train/init_from.py)
    image_size: int | None = None        # None: the method's (Method.image_size: 224; apvit 112, as the reference)
    method: str = "cam"                  # CAM method (docs/method.md §12): cam wildcat acol prm adl cutmix
    method_options: dict | None = None   # that method's options; completed with its defaults
    # optimisation (§9)
    epochs: int = 20
    batch_size: int = 224                # global batch (split across DDP ranks)
    lr: float = 0.002
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_decay: float = 0.9                # lr = lr0 * lr_decay ** floor(epoch / lr_step)
    lr_step: int = 4
    min_lr: float = 1e-7
    amp: bool = True                     # mixed precision; used on CUDA only
    # AU alignment (§5)
    au_loss: bool = True
    au_layers: tuple[int, ...] | None = None  # None: the method's (Method.au_layers: 5; apvit: 1)
    au_lambda: float = 9.0
    random_avg_p: float = 1.0
    map_kind: str = "class"
    codebook: str = "paper"
    # run
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    stop_after_epoch: int | None = None  # stop (as if killed) once this epoch is saved: resume tests

    def validate(self) -> "TrainConfig":
        """Types coerced, ranges checked; raises a one-line AucuesError."""
        def bad(key: str, why: str):
            raise AucuesError(f"config: {key} {why} (got {getattr(self, key)!r})")

        for f in fields(self):
            _coerce(self, f.name, f.type)
        if self.dataset not in DATASETS:
            bad("dataset", f"must be one of {', '.join(DATASETS)}")
        if self.num_classes not in (7, 8):
            bad("num_classes", "must be 7 or 8")
        if not 0.0 <= self.val_fraction < 1.0:
            bad("val_fraction", "must be in [0, 1)")
        if self.select_on not in SELECT_ON:
            bad("select_on", f"must be one of {', '.join(SELECT_ON)}")
        if not 0.0 <= self.valid_every_fraction < 1.0:
            bad("valid_every_fraction", "must be in [0, 1) (0: validate once per epoch)")
        if self.limit_train is not None and self.limit_train < 1:
            bad("limit_train", "must be >= 1")
        if self.num_workers < 0:
            bad("num_workers", "must be >= 0")
        if self.image_size is not None and self.image_size < 32:
            bad("image_size", "must be >= 32")
        if self.epochs < 1:
            bad("epochs", "must be >= 1")
        if self.batch_size < 1:
            bad("batch_size", "must be >= 1")
        for k in ("lr", "lr_decay"):
            if not getattr(self, k) > 0:
                bad(k, "must be > 0")
        for k in ("momentum", "weight_decay", "min_lr", "au_lambda"):
            if getattr(self, k) < 0:
                bad(k, "must be >= 0")
        if self.lr_step < 1:
            bad("lr_step", "must be >= 1")
        if self.au_layers is not None and (not self.au_layers or any(layer not in LAYERS for layer in self.au_layers)):
            bad("au_layers", "must be layers among 1..5")
        if not 0.0 < self.random_avg_p <= 1.0:
            bad("random_avg_p", "must be in (0, 1]")
        if self.map_kind not in MAP_KINDS:
            bad("map_kind", f"must be one of {', '.join(MAP_KINDS)}")
        if self.map_kind == "per_class":
            bad("map_kind", "per_class maps are not a training target (use class, generic or landmarks)")
        if self.codebook not in CODEBOOKS:
            bad("codebook", f"must be one of {', '.join(CODEBOOKS)}")
        if self.device not in DEVICES:
            bad("device", f"must be one of {', '.join(DEVICES)}")
        if self.stop_after_epoch is not None and self.stop_after_epoch < 1:
            bad("stop_after_epoch", "must be >= 1")
        from aucues.train.methods import get_method, resolve_options

        method = get_method(self.method)
        pinned = method.architecture
        if self.au_layers is None:
            self.au_layers = tuple(method.au_layers)
        if self.image_size is None:
            self.image_size = method.image_size or DEFAULT_IMAGE_SIZE
        if self.backbone is None:
            self.backbone = pinned or "resnet50"
        if not self.backbone:
            bad("backbone", "must be a backbone name")
        if pinned and self.backbone != pinned:
            bad("backbone", f"is fixed by method {self.method}: it is the {pinned} architecture (drop --backbone)")

        self.method_options = resolve_options(self.method, self.method_options, self.backbone)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["au_layers"] = None if self.au_layers is None else list(self.au_layers)
        return d

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        from aucues.io import atomic_write_text

        atomic_write_text(path, self.to_yaml())

    def lr_at(self, epoch: int) -> float:
        """The step schedule of §9 (epoch counts from 0)."""
        return max(self.lr * self.lr_decay ** (epoch // self.lr_step), self.min_lr)


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _coerce(cfg: TrainConfig, key: str, typ: str) -> None:
    """YAML and CLI give strings/ints/lists; bring each value to its declared type or fail in one line."""
    v = getattr(cfg, key)
    optional = "None" in typ
    if v is None:
        if optional:
            return
        raise AucuesError(f"config: {key} must not be empty")
    try:
        if typ.startswith("bool"):
            if isinstance(v, str):
                low = v.strip().lower()
                if low not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise ValueError
                v = low in ("true", "yes", "1", "on")
            elif not isinstance(v, (bool, int)) or v not in (0, 1, True, False):
                raise ValueError
            v = bool(v)
        elif typ.startswith("int"):
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            v = int(v)
        elif typ.startswith("float"):
            if isinstance(v, bool):
                raise ValueError
            v = float(v)
            if not math.isfinite(v):
                raise ValueError
        elif typ.startswith("tuple"):
            if isinstance(v, str):
                v = [s for s in v.replace(",", " ").split() if s]
            elif isinstance(v, int) and not isinstance(v, bool):
                v = [v]
            v = tuple(int(x) for x in v)
        elif typ.startswith("str"):
            if not isinstance(v, (str, Path)):
                raise ValueError
            v = str(v)
    except (TypeError, ValueError):
        kind = typ.split(" ")[0].split("[")[0]
        raise AucuesError(f"config: {key} must be {kind}, got {v!r}") from None
    setattr(cfg, key, v)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file -> dict of TrainConfig keys (unknown keys and bad YAML: one-line error)."""
    from aucues.config_file import read_yaml_mapping

    d = read_yaml_mapping(path)
    check_keys(d, f"config file {path}")
    return d


def check_keys(d: dict, where: str) -> None:
    from aucues.config_file import check_known_keys

    check_known_keys(d, _TYPES, where)


def resolve_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                   base: TrainConfig | None = None) -> TrainConfig:
    """Dataclass defaults <- YAML file <- overrides (CLI flags; None values mean 'not given')."""
    from aucues.config_file import layered

    file_values = {}
    if file:
        from aucues.recipes import recipe_path

        file_values = load_yaml(recipe_path(file))
    check_keys({k: v for k, v in (overrides or {}).items() if v is not None}, "options")
    return TrainConfig(**layered((base or TrainConfig()).to_dict(), file_values, overrides or {})).validate()


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    check_keys(d, "config")
    return TrainConfig(**d).validate()


__all__ = ["TrainConfig", "resolve_config", "load_yaml", "config_from_dict", "DATASETS", "MAP_KINDS"]
