"""One `error:` line by default; `--debug` or AUCUES_DEBUG=1 prints the traceback above it."""

from __future__ import annotations


def test_error_is_one_line_without_debug(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AUCUES_DEBUG", raising=False)
    code, out = cli("evaluate", tmp_path / "nope.pt", "--data", tmp_path)
    assert code == 1 and "Traceback" not in out
    assert [ln for ln in out.splitlines() if ln.startswith("error:")], out


def test_debug_flag_and_env_print_the_traceback(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AUCUES_DEBUG", raising=False)
    code, out = cli("--debug", "evaluate", tmp_path / "nope.pt", "--data", tmp_path)
    assert code == 1 and "Traceback" in out and "AucuesError" in out
    assert out.rstrip().splitlines()[-1].startswith("error:")
    monkeypatch.setenv("AUCUES_DEBUG", "1")
    code, out = cli("evaluate", tmp_path / "nope.pt", "--data", tmp_path)
    assert code == 1 and "Traceback" in out
