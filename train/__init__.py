"""aucues training stage: backbones with a CAM head (`train.models`), the composite CE + AU-alignment
loss (`train.loss`), CAM methods (`train.cams`), interpretability and classification metrics
(`train.metrics`), checkpoints (`train.checkpoint`), data and the trainer.

Imports flow one way: this package uses `aucues` and never imports export/serve."""
