"""Real face photos that ship inside packages (ENVIRONMENT.md), gathered once at set-up time into
one folder so tests and the demo never download anything at run time.

- astronaut.png: scikit-image's `data.astronaut()` (one face, public domain)
- t1.jpg (six faces) and Tom_Hanks_54745.png (aligned face): from the insightface wheel, taken with
  `pip download --no-deps` (the wheel is never installed: it would bring a second cv2 provider)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from aucues.errors import AucuesError

INSIGHTFACE_WHEEL = "insightface==2.1"
INSIGHTFACE_IMAGES = ("t1.jpg", "Tom_Hanks_54745.png")
PHOTOS = ("astronaut.png",) + INSIGHTFACE_IMAGES


def assets_dir() -> Path:
    """$AUCUES_ASSETS, else `.assets/` of a source checkout, else the user cache (a wheel install)."""
    env = os.environ.get("AUCUES_ASSETS")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return root / ".assets"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "aucues" / "assets"


def photo(name: str) -> Path:
    """Path of one gathered photo; a clear error if set-up has not gathered it."""
    p = assets_dir() / name
    if not p.exists():
        raise AucuesError(f"sample photo {name} not found in {p.parent}; run `make setup` or `python -m aucues.assets` once")
    return p


def available_photos() -> list[Path]:
    return [assets_dir() / n for n in PHOTOS if (assets_dir() / n).exists()]


def fetch(dest: Path | None = None) -> list[Path]:
    """Gather the photos into `dest` (idempotent). Needs the package registry for insightface."""
    dest = Path(dest or assets_dir())
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    astro = dest / "astronaut.png"
    if not astro.exists():
        from skimage import data

        from aucues.io import write_image

        write_image(astro, data.astronaut())
    out.append(astro)
    if not all((dest / n).exists() for n in INSIGHTFACE_IMAGES):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", INSIGHTFACE_WHEEL,
                            "-d", tmp], check=True)
            wheel = next(Path(tmp).glob("insightface-*.whl"))
            with zipfile.ZipFile(wheel) as z:
                for n in INSIGHTFACE_IMAGES:
                    (dest / n).write_bytes(z.read(f"insightface/data/images/{n}"))
    out += [dest / n for n in INSIGHTFACE_IMAGES]
    return out


if __name__ == "__main__":
    for p in fetch():
        print(p)
