"""Training recipes shipped with aucues (TrainConfig YAML files, package data).

- demo.yaml: the small CPU recipe of `aucues demo`
- paper_rafdb.yaml / paper_affectnet.yaml: the paper's ResNet50 recipes (lambda 4 / 9)

`--config` takes a file path or one of these names (with or without .yaml), so recipes work from a
wheel install as well as from a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aucues.errors import AucuesError


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def recipe_path(name: str | Path) -> Path:
    """A recipe file: `name` itself when it exists, else the packaged recipe of that name."""
    p = Path(name)
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name
    packaged = Path(str(resources.files(__name__).joinpath(f"{stem}.yaml")))
    if packaged.is_file() and (p.parent == Path(".") or p.parent.name in ("configs", "recipes")):
        return packaged
    raise AucuesError(f"training recipe {name} not found (a YAML file, or one of: {', '.join(recipe_names())})")
