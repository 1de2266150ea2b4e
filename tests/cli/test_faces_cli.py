"""`aucues landmarks`: real photos, real MediaPipe; bad input gives one line and no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from aucues.io import read_image
from aucues.landmark_cache import LandmarkCache

REPO = Path(__file__).resolve().parents[2]


def _error_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("error:")]


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut_path):
    """Odd-format copies of the astronaut, plus inputs that cannot work."""
    d = tmp_path_factory.mktemp("faces_cli")
    bgr = cv2.cvtColor(read_image(astronaut_path), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(d / "rgba.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(d / "deep16.png"), bgr.astype(np.uint16) * 257)
    gradient = np.tile(np.linspace(0, 255, 300).astype(np.uint8), (200, 1))
    cv2.imwrite(str(d / "gradient.png"), np.dstack([gradient] * 3))
    cv2.imwrite(str(d / "gradient16.png"), gradient.astype(np.uint16) * 257)
    cv2.imwrite(str(d / "gradient_rgba.png"), np.dstack([gradient] * 4))
    (d / "text.jpg").write_text("hello, I am not a JPEG\n")
    return d


def test_json_and_draw(cli, astronaut_path, tmp_path):
    out = tmp_path / "overlay.png"
    code, text = cli("landmarks", astronaut_path, "--json", "--draw", out)
    assert code == 0, text
    doc = json.loads(text)
    (item,) = doc["images"]
    assert item["path"] == str(astronaut_path)
    (face,) = item["faces"]
    assert len(face["box"]) == 4 and len(face["points"]) == 68 and 0.5 < face["score"] <= 1
    drawn, orig = read_image(out), read_image(astronaut_path)
    assert drawn.shape == orig.shape
    # the overlay changed pixels around the face only
    changed = np.argwhere((drawn != orig).any(axis=2))
    assert len(changed) > 200
    x0, y0, x1, y1 = face["box"]
    assert changed[:, 1].min() >= x0 - 30 and changed[:, 1].max() <= x1 + 30


def test_table_output_and_several_draws(cli, astronaut_path, six_faces_path, tmp_path):
    code, text = cli("landmarks", astronaut_path, six_faces_path, "--draw", tmp_path / "d.png")
    assert code == 0, text
    assert f"{astronaut_path}: 1 face" in text and f"{six_faces_path}: 6 faces" in text
    assert (tmp_path / "d_0.png").exists() and (tmp_path / "d_1.png").exists()
    assert not (tmp_path / "d.png").exists()
    assert read_image(tmp_path / "d_1.png").shape == read_image(six_faces_path).shape


@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "deep16.png"])
def test_odd_formats_with_a_face_work(cli, files, name):
    code, text = cli("landmarks", files / name, "--json")
    assert code == 0, text
    assert len(json.loads(text)["images"][0]["faces"]) == 1


@pytest.mark.parametrize("name,message", [
    ("missing.jpg", "no such file"),
    ("text.jpg", "not a decodable image"),
    ("gradient.png", "no face found"),
    ("gradient16.png", "no face found"),
    ("gradient_rgba.png", "no face found"),
])
def test_bad_input_one_line(cli, files, name, message):
    code, text = cli("landmarks", files / name)
    assert code != 0
    assert "Traceback" not in text
    (line,) = _error_lines(text)
    assert message in line and name in line
    assert len(text.strip().splitlines()) == 1


def test_mixed_good_and_bad(cli, astronaut_path, files):
    code, text = cli("landmarks", astronaut_path, files / "text.jpg", "--json")
    assert code == 1
    lines = _error_lines(text)
    assert len(lines) == 1 and "text.jpg" in lines[0]
    doc = json.loads("\n".join(ln for ln in text.splitlines() if not ln.startswith("error:")))
    assert len(doc["images"][0]["faces"]) == 1 and "error" in doc["images"][1]


def test_usage_errors(cli, astronaut_path, tmp_path):
    for args in [("landmarks",), ("landmarks", "--batch", tmp_path / "nope"),
                 ("landmarks", astronaut_path, "--batch", tmp_path),
                 ("landmarks", astronaut_path, "--cache", tmp_path / "c.json"),
                 ("landmarks", astronaut_path, "--draw", tmp_path / "drawing.unknownsuffix")]:
        code, text = cli(*args)
        assert code != 0 and "Traceback" not in text
        assert len(_error_lines(text)) == 1, text


def test_batch(cli, tmp_path, astronaut_path, files):
    root = tmp_path / "ds"
    (root / "a").mkdir(parents=True)
    shutil.copy(astronaut_path, root / "a" / "astro.png")
    shutil.copy(files / "gradient.png", root / "grad.png")
    shutil.copy(files / "text.jpg", root / "a" / "text.jpg")
    (root / "notes.txt").write_text("not an image")
    (root / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # dangling: reported, not dropped silently
    cache = tmp_path / "lm.sqlite"
    code, text = cli("landmarks", "--batch", root, "--cache", cache, "--json")
    assert code == 0, text
    s = json.loads(text)
    assert (s["processed"], s["faces"], s["missing"], s["errors"], s["ignored"]) == (4, 1, 1, 2, 1)
    assert any("gone.jpg: dangling symlink" in e for e in s["error_examples"])
    assert LandmarkCache(cache).keys() == ["a/astro.png", "a/text.jpg", "gone.jpg", "grad.png"]
    code, text = cli("landmarks", "--batch", root, "--cache", cache)
    assert code == 0 and "4 already cached, 1 other files ignored" in text
    # default cache location: inside the dataset folder
    code, text = cli("landmarks", "--batch", root, "--json")
    assert code == 0 and (root / "aucues_landmarks68.sqlite").exists()
    # a cache another landmark source made (here: no source recorded, an older aucues) is refused in
    # one line; --refresh redoes every image
    with LandmarkCache(cache) as c:
        c._writable().execute("DELETE FROM meta WHERE name='source'")
    code, text = cli("landmarks", "--batch", root, "--cache", cache)
    assert code == 1 and text.strip().startswith("error:") and "--refresh" in text and len(text.strip().splitlines()) == 1
    code, text = cli("landmarks", "--batch", root, "--cache", cache, "--refresh")
    assert code == 0 and "4 landmarked now" in text and "cleared 4 entries of another landmark source" in text, text


def test_console_script_never_shows_a_traceback(files, astronaut_path):
    exe = Path(sys.executable).parent / "aucues"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "aucues"
    bad = [files / "missing.jpg", files / "text.jpg", files / "gradient.png"]
    proc = subprocess.run([str(exe), "landmarks", str(astronaut_path), *map(str, bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    # stderr holds exactly one line per failing image and nothing else (no MediaPipe chatter)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("error:") for ln in lines), proc.stderr
    assert "no such file" in lines[0] and "not a decodable image" in lines[1] and "no face found" in lines[2]
    assert f"{astronaut_path}: 1 face" in proc.stdout
