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
    """One real MediaPipe FaceLandmarker for the whole session (its graphs take ~0.6 s to build)."""
    from aucues.landmarks import FaceLandmarker

    with FaceLandmarker() as landmarker:
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
