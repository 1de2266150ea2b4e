"""aucues training stage: backbones with a CAM head (`aucues.train.models`), the composite CE + AU-alignment
loss (`aucues.train.loss`), CAM methods (`aucues.train.cams`), interpretability and classification metrics
(`aucues.train.metrics`), checkpoints (`aucues.train.checkpoint`), data and the trainer.

Imports flow one way: this package uses `aucues` and never imports export/serve."""

if __name__ != "aucues.train":  # the folder is installed as aucues.train; never as a top-level `train`
    raise ImportError("the train/ folder is the aucues.train package: `import aucues.train` "
                      "(installed by `pip install -e .` or the aucues wheel)")

