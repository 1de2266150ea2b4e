import numpy as np
import pytest

from aucues.codebook import AU_NAMES, GENERIC_AUS, codebook
from aucues.errors import AucuesError
from aucues.io import atomic_write_bytes, decode_image
from aucues.labels import CLASS_NAMES, RAFDB_TO_INDEX, class_index
from aucues.preprocessing import PreprocessConfig


def test_classes_and_rafdb_ids():
    assert CLASS_NAMES == ("Neutral", "Happiness", "Surprise", "Fear", "Anger", "Disgust", "Sadness")
    assert CLASS_NAMES[RAFDB_TO_INDEX[1]] == "Surprise" and CLASS_NAMES[RAFDB_TO_INDEX[7]] == "Neutral"
    assert CLASS_NAMES[RAFDB_TO_INDEX[4]] == "Happiness" and CLASS_NAMES[RAFDB_TO_INDEX[6]] == "Anger"
    assert class_index("happy") == 1 and class_index("SADNESS") == 6
    with pytest.raises(AucuesError, match="unknown expression"):
        class_index("bored")


def test_codebook_matches_paper():
    cb = codebook("paper")
    assert cb[0] == ()
    assert cb[CLASS_NAMES.index("Happiness")] == (6, 12, 25)
    assert set(cb[CLASS_NAMES.index("Disgust")]) == {9, 10, 16, 17, 25, 26}
    ref = codebook("reference")
    assert set(ref[CLASS_NAMES.index("Disgust")]) == {9, 5, 16, 17, 25, 26}
    assert len(GENERIC_AUS) == 20 and set(GENERIC_AUS) <= set(AU_NAMES)
    with pytest.raises(AucuesError):
        codebook("other")


def test_preprocess_round_trip_and_normalize():
    cfg = PreprocessConfig(image_size=64, attention_layers=(4, 5))
    again = PreprocessConfig.from_json(cfg.to_json())
    assert again == cfg
    img = np.full((64, 64, 3), 128, np.uint8)
    x = cfg.normalize(img)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    assert np.array_equal(cfg.denormalize(x), img)
    with pytest.raises(AucuesError, match="unknown preprocessing keys"):
        PreprocessConfig.from_dict({"image_size": 64, "bogus": 1})


@pytest.mark.parametrize("data, msg", [(b"", "empty"), (b"hello world, not an image", "not a decodable"),
                                       (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not a decodable")])
def test_decode_rejects_bad_bytes(data, msg):
    with pytest.raises(AucuesError, match=msg):
        decode_image(data)


def test_decode_refuses_huge_image_from_header():
    import cv2

    ok, enc = cv2.imencode(".png", np.zeros((300, 300, 3), np.uint8))
    with pytest.raises(AucuesError, match="pixel limit"):
        decode_image(enc.tobytes(), max_pixels=1000)


def test_decode_converts_gray_rgba_16bit():
    import cv2

    for img in (np.full((8, 9), 200, np.uint8), np.full((8, 9, 4), 200, np.uint8),
                np.full((8, 9, 3), 200 * 257, np.uint16)):
        ok, enc = cv2.imencode(".png", img)
        rgb = decode_image(enc.tobytes())
        assert rgb.shape == (8, 9, 3) and rgb.dtype == np.uint8 and int(rgb[0, 0, 0]) == 200


def test_atomic_write_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "f.bin"
    atomic_write_bytes(p, b"123")
    assert p.read_bytes() == b"123"
    assert [x.name for x in p.parent.iterdir()] == ["f.bin"]
