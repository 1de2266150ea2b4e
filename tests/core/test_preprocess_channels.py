"""PreprocessConfig `channels` (1 = grayscale) and `crop` fields: additive, old configs load."""

import numpy as np
import pytest

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig


def test_old_configs_default_to_rgb_five_point():
    d = PreprocessConfig().to_dict()
    del d["channels"], d["crop"]
    pp = PreprocessConfig.from_dict(d)
    assert pp.channels == 3 and pp.crop == "five_point"


def test_grayscale_normalize_is_cv2_gray_then_mean_std():
    import cv2

    pp = PreprocessConfig(image_size=64, mean=(0.5,) * 3, std=(0.5,) * 3, channels=1, crop="box")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    x = pp.normalize(img)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], (gray / 255 - 0.5) * 2, atol=1e-6)
    back = pp.denormalize(x)
    assert back.shape == (64, 64, 3) and np.array_equal(back[..., 0], gray.astype(np.uint8))
    assert PreprocessConfig.from_json(pp.to_json()) == pp


@pytest.mark.parametrize("kw", [{"channels": 2}, {"channels": True}, {"crop": "tight"}])
def test_bad_channels_or_crop(kw):
    with pytest.raises(AucuesError):
        PreprocessConfig(**kw)
