"""The wheel is the deliverable: built from the working tree, installed (--no-deps) into a fresh venv
that sees the project's dependencies but not its editable install, it builds a Triton repository with
`aucues repository build` from a directory outside any checkout, and a real tritonserver started from
that venv loads the ensemble. Fails when pyproject.toml leaves a package or package-data file out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import skip_unless_ci
from tests.serve.conftest import tiny_checkpoint, tiny_onnx  # noqa: F401  (the tiny exported model)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "aucues", "train", "export", "serve", "cli")

SERVE_SCRIPT = """
import json, sys, urllib.request
from aucues.serve.tritonserver import TritonServer
s = TritonServer(sys.argv[1]).start(timeout=240)
try:
    ready = {}
    for m in ("preprocess", "classifier", "postprocess", "aucues"):
        try:
            with urllib.request.urlopen(f"http://{s.http_url}/v2/models/{m}/ready", timeout=5) as r:
                ready[m] = r.status == 200
        except OSError:
            ready[m] = False
    print(json.dumps(ready))
finally:
    code = s.stop()
assert code == 0, f"tritonserver exit code {code}"
"""


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_wheel_builds_repository_and_serves(tiny_onnx, tmp_path):
    from aucues.serve.tritonserver import find_tritonserver

    # build from a copy of the working tree, so no build/ or egg-info lands in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.pyc")}
                                        if (ROOT / name).is_dir() else {}))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)])
    wheels = list(dist.glob("aucues-*.whl"))
    assert len(wheels) == 1, wheels

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # a plain path line: the project's dependencies without its editable-install finder (.pth files
    # are processed only in site dirs, not in folders a .pth line adds)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheels[0])])

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run([str(py), "-c", "import aucues.train, aucues.serve.triton_models as t, aucues.recipes as r;"
                  "print(aucues.train.__file__); print(t.__file__); print(r.__file__)"],
                 cwd=work, env=env).stdout.split()
    for f in where:
        assert Path(f).resolve().is_relative_to(site.resolve()), f"{f} is not from the wheel venv"
    assert list(Path(where[2]).parent.glob("*.yaml")), "recipes (package data) missing from the wheel"

    repo = work / "repo"
    _run([str(env_dir / "bin" / "aucues"), "repository", "build", "--onnx", str(tiny_onnx), "--out", str(repo),
          "--max-batch", "8"], cwd=work, env=env)
    for rel in ("preprocess/1/model.py", "postprocess/1/model.py", "classifier/1/model.py",
                "classifier/1/model.onnx", "aucues/config.pbtxt", "classifier/labels.txt"):
        assert (repo / rel).is_file(), f"{rel} missing from the wheel-built repository"

    try:
        find_tritonserver()
    except Exception as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    out = _run([str(py), "-c", SERVE_SCRIPT, str(repo)], cwd=work, env=env).stdout
    ready = json.loads(out.strip().splitlines()[-1])
    assert ready == {"preprocess": True, "classifier": True, "postprocess": True, "aucues": True}, ready
