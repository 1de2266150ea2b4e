"""Two facts of the method that every stage uses, typed once (docs/method.md):

- LAYERS: the layers whose attention a model can return, numbered as in §5 (1 = conv1, 2..5 = the
  four residual stages), in this order everywhere (loss, CAM hooks, export outputs, metrics);
- DEFAULT_IMAGE_SIZE: the paper's input side (§9; AU region sizes in §3 are also given for it).
No imports: the core modules (align, preprocessing) and every stage can depend on it."""

LAYERS: tuple[int, ...] = (1, 2, 3, 4, 5)
DEFAULT_IMAGE_SIZE = 224
