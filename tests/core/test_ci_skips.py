"""A missing tritonserver skips locally but fails under CI=true."""

from __future__ import annotations

import pytest

import tests.conftest as tc


def test_skip_locally_fail_in_ci(monkeypatch):
    monkeypatch.setattr(tc, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        tc.skip_unless_ci("tritonserver binary absent")
    monkeypatch.setattr(tc, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true but tritonserver"):
        tc.skip_unless_ci("tritonserver binary absent")
