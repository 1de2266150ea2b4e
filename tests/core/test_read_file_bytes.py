"""Inputs are read only from regular files with a size cap: no hang on /dev/zero or a FIFO."""

from __future__ import annotations

import os

import pytest

from aucues.errors import AucuesError
from aucues.io import read_file_bytes, read_image


def test_regular_file_and_cap(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    assert read_file_bytes(tmp_path / "a") == b"12345"
    with pytest.raises(AucuesError, match="byte limit"):
        read_file_bytes(tmp_path / "a", max_bytes=4)


@pytest.mark.parametrize("kind,msg", [("dir", "is a directory"), ("fifo", "not a regular file"),
                                      ("zero", "not a regular file"), ("dangling", "dangling symlink"),
                                      ("missing", "no such file")])
def test_special_paths_are_one_line_errors(tmp_path, kind, msg):
    p = tmp_path / "x"
    if kind == "dir":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "zero":
        p = "/dev/zero"
    elif kind == "dangling":
        p.symlink_to(tmp_path / "gone")
    with pytest.raises(AucuesError, match=msg) as e:
        read_image(p)
    assert "\n" not in str(e.value)
