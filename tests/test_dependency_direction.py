"""The one-way dependency rule between the project's layers, checked on every module's imports (ast,
function-level imports included): core `aucues` <- train <- export <- serve <- cli. A layer never
imports one to its right, and nothing imports the stage folders as top-level packages (`train`,
`serve`, ...): they exist only as aucues.train, aucues.export, aucues.serve, aucues.cli."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("train", "export", "serve", "cli")
# layer -> the aucues subpackages it must never import
FORBIDDEN = {
    "core": {"train", "export", "serve", "cli"},
    "train": {"export", "serve", "cli"},
    "export": {"serve", "cli"},
    "serve": {"cli"},
    "cli": set(),
}
# serve's imports of upstream stages as they stand; any new one must be added here on purpose.
SERVE_UPSTREAM = {
    # build_repository --checkpoint exports first; default_spec builds the default model for the
    # checked-in model_repository/
    ("serve/repository.py", "aucues.export.config"),
    ("serve/repository.py", "aucues.export.onnx_export"),
    ("serve/repository.py", "aucues.train.models"),
    ("serve/repository.py", "aucues.train.models.base"),
    # the exporter's own metadata reader, so serve and export read ONNX metadata the same way
    ("serve/spec.py", "aucues.export.metadata"),
}


def _layers():
    yield "core", ROOT / "aucues"
    for s in STAGES:
        yield s, ROOT / s


def _imports(path: Path, package: str) -> list[str]:
    """Absolute names of every module `path` imports (relative imports resolved against `package`)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append(base)
    return names


def _modules():
    for layer, folder in _layers():
        pkg_root = "aucues" if layer == "core" else f"aucues.{layer}"
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(folder).with_suffix("")
            package = ".".join([pkg_root, *rel.parts[:-1]])
            yield layer, path, package


def test_modules_found():
    layers = {layer for layer, _, _ in _modules()}
    assert layers == set(FORBIDDEN), layers


def test_one_way_rule():
    bad, upstream = [], set()
    for layer, path, package in _modules():
        rel = str(path.relative_to(ROOT))
        for name in _imports(path, package):
            parts = name.split(".")
            if parts[0] != "aucues" or len(parts) < 2:
                continue
            target = parts[1]
            if target in FORBIDDEN[layer]:
                bad.append(f"{rel} imports {name}")
            if layer == "serve" and target in ("train", "export"):
                upstream.add((rel, name))
    assert not bad, "\n".join(bad)
    assert upstream == SERVE_UPSTREAM, f"serve's upstream imports changed: {sorted(upstream ^ SERVE_UPSTREAM)}"


def test_no_top_level_stage_imports():
    bad = []
    for folder in [f for _, f in _layers()] + [ROOT / "tests", ROOT / "scripts"]:
        for path in sorted(folder.rglob("*.py")):
            for name in _imports(path, "aucues"):
                if name.split(".")[0] in STAGES:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_importable_only_inside_aucues(stage):
    run = lambda code: subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                      timeout=120)
    top = run(f"import {stage}")
    # from the checkout root the folder is on sys.path, but its __init__ refuses a top-level import
    assert top.returncode != 0 and ("ModuleNotFoundError" in top.stderr
                                    or f"import aucues.{stage}" in top.stderr), top.stderr
    ok = run(f"import aucues.{stage}")
    assert ok.returncode == 0, ok.stderr
