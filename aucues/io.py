"""Robust image decoding and atomic file writes shared by every stage."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from aucues.errors import AucuesError

# Decoded images larger than this are refused before they exhaust memory (server and CLI alike).
MAX_PIXELS = 50_000_000


def _to_rgb_uint8(img: np.ndarray, what: str) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)  # 16-bit -> 8-bit, full range kept
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise AucuesError(f"{what}: unsupported pixel type {img.dtype}")
    import cv2

    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise AucuesError(f"{what}: unsupported image shape {img.shape}")


def decode_image(data: bytes | np.ndarray, what: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes (JPEG, PNG, BMP, WebP, ...) -> RGB uint8 HxWx3. Raises AucuesError."""
    import cv2

    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
    if buf.dtype != np.uint8:
        raise AucuesError(f"{what}: encoded image bytes must be uint8, got {buf.dtype}")
    buf = buf.reshape(-1)
    if buf.size == 0:
        raise AucuesError(f"{what}: empty input")
    # Read the header first so a huge image is refused before it is decoded.
    ok, w, h = _peek_size(buf)
    if ok and w * h > max_pixels:
        raise AucuesError(f"{what}: image is {w}x{h}, larger than the {max_pixels} pixel limit")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise AucuesError(f"{what}: not a decodable image (corrupt, truncated or unsupported format)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise AucuesError(f"{what}: image is {img.shape[1]}x{img.shape[0]}, larger than the {max_pixels} pixel limit")
    return _to_rgb_uint8(img, what)


def _peek_size(buf: np.ndarray) -> tuple[bool, int, int]:
    """Width and height from a PNG/JPEG header without decoding; (False, 0, 0) when unknown."""
    b = buf[:65536].tobytes()
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24:
        return True, int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h = int.from_bytes(b[i + 5:i + 7], "big")
                w = int.from_bytes(b[i + 7:i + 9], "big")
                return True, w, h
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + int.from_bytes(b[i + 2:i + 4], "big")
    return False, 0, 0


# Files read as whole images/inputs larger than this are refused before they are read.
MAX_FILE_BYTES = 200 * 1024 * 1024


def read_file_bytes(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, at most `max_bytes`: a directory, FIFO, device (/dev/zero),
    socket, dangling symlink or too large file is a one-line AucuesError, never a hang."""
    import stat

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise AucuesError(f"{p}: dangling symlink (its target does not exist)") from None
        raise AucuesError(f"{p}: no such file") from None
    except OSError as e:
        raise AucuesError(f"{p}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AucuesError(f"{p}: is a directory, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise AucuesError(f"{p}: not a regular file (a FIFO, device or socket); refusing to read it")
    if st.st_size > max_bytes:
        raise AucuesError(f"{p}: {st.st_size} bytes, larger than the {max_bytes} byte limit")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise AucuesError(f"{p}: cannot read ({e.strerror})") from None
    if len(data) > max_bytes:  # grew while being read
        raise AucuesError(f"{p}: larger than the {max_bytes} byte limit")
    return data


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A file -> RGB uint8 HxWx3, with a one-line AucuesError for missing, non-regular, too large or
    undecodable files."""
    data = read_file_bytes(path)
    return decode_image(data, what=str(Path(path)), max_pixels=max_pixels)


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB image atomically (format from the suffix)."""
    import cv2

    p = Path(path)
    ok, enc = cv2.imencode(p.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise AucuesError(f"{p}: cannot encode image")
    atomic_write_bytes(p, enc.tobytes())


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (/proc on Linux); else the
    classic set-and-restore (briefly racy against other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers never see half a file.
    The file gets the mode a plain open() would give (0o666 & ~umask, 0644 under umask 022), not
    mkstemp's private 0600."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")
