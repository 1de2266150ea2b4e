"""The synthetic AU benchmark: procedurally drawn faces (68 known, deformed landmarks) whose 7
expressions are made of the codebook's Action Units, plus a class-correlated distractor placed
outside every AU region, written in RAF-DB's layout. The embedded default dataset of the demo and
the tests.

    from aucues.synth import synthesize, preview_grid
    summary = synthesize("data/synth", per_class=200, seed=0)
    preview_grid("data/synth", "synth_preview.png")
"""

from aucues.synth.dataset import (CACHE, IMAGE_DIR, LABELS, META_FORMAT, META_NAME, image_key,
                                  is_synth_output, sample_name, synthesize)
from aucues.synth.preview import preview_grid
from aucues.synth.render import DISTRACTOR_KINDS
from aucues.synth.sample import generic_ellipses, render_sample

__all__ = [
    "CACHE", "DISTRACTOR_KINDS", "IMAGE_DIR", "LABELS", "META_FORMAT", "META_NAME", "generic_ellipses",
    "image_key", "is_synth_output", "preview_grid", "render_sample", "sample_name", "synthesize",
]
