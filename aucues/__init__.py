"""aucues core: what every stage uses (faces, landmarks, alignment, AU codebook and maps, labels,
preprocessing config). Importing it never needs a GPU, MediaPipe models are loaded lazily."""

__version__ = "0.1.0"

from aucues.errors import AucuesError  # noqa: E402
from aucues.labels import CLASS_NAMES, NUM_CLASSES  # noqa: E402
from aucues.preprocessing import PreprocessConfig  # noqa: E402

__all__ = ["AucuesError", "CLASS_NAMES", "NUM_CLASSES", "PreprocessConfig", "__version__"]
