"""Shared fixtures: real photos gathered at set-up, the CLI runner, a small synthetic dataset."""

from __future__ import annotations

import os

import pytest

# Two cores: keep torch from oversubscribing when tests run.
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
def cli():
    """Run `aucues ARGS` in-process through main(); returns (exit_code, stdout+stderr)."""
    from typer.testing import CliRunner

    from aucues.cli.main import app

    runner = CliRunner()

    def run(*args: str):
        from aucues.errors import AucuesError

        try:
            result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
        except AucuesError as e:  # pragma: no cover - invoke catches
            return 1, str(e)
        out = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            if isinstance(result.exception, AucuesError):
                return 1, out + f"error: {result.exception}"
            raise result.exception
        return result.exit_code, out

    return run


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A small synthetic AU benchmark in RAF-DB layout (4 per class, 64 px), built once per session."""
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=4, seed=0, image_size=64, progress=False)
    return root
