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


# A side this long or an aspect ratio this extreme is no face photo: refused from the header, before
# any pixel is decoded (a 16x10000 PNG, a 60000x60000 JPEG declared after 64 KB of comments).
MAX_SIDE = 16384
MAX_ASPECT = 16.0
# JPEGs above this many pixels are decoded at 1/2, 1/4 or 1/8 size by libjpeg itself (no full-size
# buffer): a face detector needs no more than a few megapixels.
REDUCE_ABOVE_PIXELS = 8_000_000
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def check_size(w: int, h: int, what: str = "image", max_pixels: int = MAX_PIXELS) -> None:
    """Raise AucuesError for sizes a face photo never has (zero, too many pixels, too long, too thin)."""
    if w <= 0 or h <= 0:
        raise AucuesError(f"{what}: the header declares an empty image ({w}x{h})")
    if w * h > max_pixels:
        raise AucuesError(f"{what}: image is {w}x{h}, larger than the {max_pixels} pixel limit")
    if max(w, h) > MAX_SIDE:
        raise AucuesError(f"{what}: image is {w}x{h}, a side over the {MAX_SIDE} pixel limit")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise AucuesError(f"{what}: image is {w}x{h}, an aspect ratio over {MAX_ASPECT:g}:1")


def decode_image(data: bytes | np.ndarray, what: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes (JPEG, PNG, BMP, WebP, ...) -> RGB uint8 HxWx3. Raises AucuesError."""
    return decode_image_scaled(data, what, max_pixels)[0]


def decode_image_scaled(data: bytes | np.ndarray, what: str = "image",
                        max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """decode_image plus the factor from decoded to original pixel coordinates (1, 2, 4 or 8: large
    JPEGs are decoded at reduced size). JPEGs are decoded with their EXIF orientation applied (as
    every viewer shows them); the header's size is checked before decoding."""
    import cv2

    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
    if buf.dtype != np.uint8:
        raise AucuesError(f"{what}: encoded image bytes must be uint8, got {buf.dtype}")
    buf = buf.reshape(-1)
    if buf.size == 0:
        raise AucuesError(f"{what}: empty input")
    # Read the header first so a huge image is refused before it is decoded.
    fmt, w, h = peek_size(buf)
    if fmt:
        check_size(w, h, what, max_pixels)
    scale = 1
    if fmt == "jpeg":
        # IMREAD_COLOR (not UNCHANGED) applies the EXIF Orientation tag; JPEG is 8-bit anyway.
        while scale < 8 and w * h / (scale * scale) > REDUCE_ABOVE_PIXELS:
            scale *= 2
        flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}[scale]
    else:
        flags = cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(buf, flags)
    if img is None or img.size == 0:
        raise AucuesError(f"{what}: not a decodable image (corrupt, truncated or unsupported format)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise AucuesError(f"{what}: image is {img.shape[1]}x{img.shape[0]}, larger than the {max_pixels} pixel limit")
    return _to_rgb_uint8(img, what), float(scale)


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    """The largest (w, h) over every SOF marker, walking the segments of the whole buffer (a SOF may
    follow any amount of APP/COM data) and skipping entropy-coded data with bytes.find (C speed)."""
    n, i, best = len(b), 2, None
    while i + 4 <= n:
        if b[i] != 0xFF:
            j = b.find(b"\xff", i)
            if j < 0:
                break
            i = j
            continue
        marker = b[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in (0x00, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:          # EOI
            break
        seg = int.from_bytes(b[i + 2:i + 4], "big")
        if marker in _SOF and i + 9 <= n:
            h = int.from_bytes(b[i + 5:i + 7], "big")
            w = int.from_bytes(b[i + 7:i + 9], "big")
            best = (w, h) if best is None or w * h > best[0] * best[1] else best
        if marker == 0xDA:          # SOS: entropy-coded data follows, find the next real marker
            i += 2 + seg
            while True:
                j = b.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return best
                if b[j + 1] == 0x00 or 0xD0 <= b[j + 1] <= 0xD7 or b[j + 1] == 0xFF:
                    i = j + 1 if b[j + 1] == 0xFF else j + 2
                    continue
                i = j
                break
            continue
        i += 2 + seg
    return best


def peek_size(buf) -> tuple[str, int, int]:
    """(format, width, height) from the header actually present, without decoding: PNG IHDR, every
    JPEG SOF, WebP VP8/VP8L/VP8X, BMP. ("", 0, 0) when the format is unknown here (OpenCV decides);
    raises AucuesError for a known format whose header is truncated or declares no size."""
    b = bytes(buf) if not isinstance(buf, np.ndarray) else buf.tobytes()
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        if len(b) < 24 or b[12:16] != b"IHDR":
            raise AucuesError("truncated or malformed PNG header (no IHDR)")
        return "png", int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:3] == b"\xff\xd8\xff":
        size = _jpeg_size(b)
        if size is None:
            raise AucuesError("not a decodable image: JPEG without a frame header (SOF), corrupt or truncated")
        return "jpeg", size[0], size[1]
    if b[:2] == b"BM" and len(b) >= 26:
        return "bmp", abs(int.from_bytes(b[18:22], "little", signed=True)), \
            abs(int.from_bytes(b[22:26], "little", signed=True))
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP" and len(b) >= 30:
        chunk = b[12:16]
        if chunk == b"VP8X":
            return "webp", 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
        if chunk == b"VP8 ":
            return "webp", int.from_bytes(b[26:28], "little") & 0x3FFF, int.from_bytes(b[28:30], "little") & 0x3FFF
        if chunk == b"VP8L":
            v = int.from_bytes(b[21:25], "little")
            return "webp", (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1
    return "", 0, 0


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
