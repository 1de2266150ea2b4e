"""What a training run is built from its TrainConfig: the data (train and validation sets), the
PreprocessConfig the model is trained and served with, the model, the optimiser and its schedule, and
`TrainState`, everything the loop in train/trainer.py mutates."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.config import TrainConfig
from aucues.train.distributed import DistEnv


def build_data(config: TrainConfig, preprocess: PreprocessConfig | None = None):
    """-> (index, train FERDataset, val FERDataset | None). Validation (train/protocol.py): the
    dataset's own `val` split when it has one, else a stratified seeded hold-out of `val_fraction` of
    train; the test split only with select_on: test (the reference's protocol)."""
    from aucues.train.data import FERDataset, build_transform, open_dataset
    from aucues.train.protocol import selection_records

    index = open_dataset(config.dataset, config.data, config.num_classes)
    train_recs = list(index.split("train"))
    if config.limit_train:
        train_recs = train_recs[: config.limit_train]
    train_recs, val_recs = selection_records(config, index, train_recs)
    if not train_recs:
        raise AucuesError(f"{config.data}: no training images left")
    if preprocess is not None and tuple(preprocess.class_names) != tuple(index.class_names):
        raise AucuesError(f"--init: the model's classes {list(preprocess.class_names)} differ from the "
                          f"dataset's {list(index.class_names)}")
    if preprocess is None:
        preprocess = make_preprocess(config, index.class_names, index.align_template)
    elif index.align_template is not None and preprocess.crop == "five_point":
        # --init: the model is trained on, and so served on, the data's crop
        preprocess = preprocess.with_template(index.align_template)
    train_tf = build_transform(preprocess, train=config.augment)
    train_ds = FERDataset(train_recs, index.landmarks, train_tf, config.map_kind, config.codebook, config.seed)
    val_ds = None
    if val_recs:
        val_ds = FERDataset(val_recs, index.landmarks, build_transform(preprocess, train=False),
                            "class", config.codebook, config.seed, map_at_output=True)
    return index, train_ds, val_ds


def make_preprocess(config: TrainConfig, class_names, template=None) -> PreprocessConfig:
    """template: the data's AlignTemplate (DatasetIndex.align_template); the model is served on the
    crop it was trained on. None (unknown): the default template."""
    pre = PreprocessConfig(image_size=config.image_size, class_names=tuple(class_names), codebook=config.codebook)
    return pre if template is None else pre.with_template(template)


def build_fer_model(config: TrainConfig, preprocess: PreprocessConfig):
    from aucues.train.models import ModelConfig, build_model

    if config.init:  # fine-tuning from a checkpoint: its weights (train/init_from.py)
        from aucues.train.init_from import init_model

        return init_model(config, preprocess)

    mc = ModelConfig(backbone=config.backbone, num_classes=config.num_classes, large_maps=config.large_maps,
                     weights=config.weights or "random", method=config.method,
                     method_options=config.method_options or {})
    return build_model(mc, preprocess)


def build_optimizer(model, config: TrainConfig):
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    # one schedule: TrainConfig.lr_at (the scheduler multiplies the base lr by this factor)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: config.lr_at(e) / config.lr)
    return opt, sched


@dataclass
class TrainState:
    """What the loop mutates: model, optimiser, schedule, AMP scaler, loss, history and best so far."""
    model: object
    optimizer: object
    scheduler: object
    scaler: object
    criterion: object
    use_amp: bool
    start_epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": 0, "accuracy": None, "ce": None})
    validations: list = field(default_factory=list)   # every validation (epoch, step, accuracy...)
    selection: str = ""                                # what selects the model (train/protocol.py)


def build_state(config: TrainConfig, env: DistEnv, train_ds) -> TrainState:
    from aucues.train.loss import AUAlignmentLoss

    preprocess = train_ds.transform.preprocess
    model = build_fer_model(config, preprocess).to(env.device)
    optimizer, scheduler = build_optimizer(model, config)
    use_amp = config.amp and env.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = AUAlignmentLoss(config.au_layers, config.au_lambda, config.random_avg_p, enabled=config.au_loss)
    return TrainState(model, optimizer, scheduler, scaler, criterion, use_amp)
