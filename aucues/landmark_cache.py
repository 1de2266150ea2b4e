"""Per-dataset landmark cache: the store, its formats and its points' source (docs/landmark_cache.md).

The cache is one SQLite file (`aucues_landmarks68.sqlite`): a table of (key, face) rows, key = the
image path relative to the dataset root with forward slashes, face = a 226-byte blob
(aucues.landmark_codec) or NULL for "no face" (or an undecodable image). A processed key is never
landmarked again, so an interrupted run of the batch landmarker (aucues.landmark_batch) resumes.
Every set() is its own transaction in WAL mode: a kill -9 loses at most the item being written, and
nothing is rewritten whole.

The meta table records the points' `source` (aucues.landmarks.MESH68_SOURCE for MediaPipe and its ONNX
twin, another string for synthetic ground truth): resuming into a cache made by another source (an
older 468 -> 68 mapping, or none recorded) is refused unless the caller asks to refresh it, so one
dataset never holds two definitions of the 68 points.

The old JSON cache (`aucues_landmarks68.json`, format aucues-landmarks/1) is still read: a cache path
`X.json` or `X.sqlite` names the store `X.sqlite`; while that does not exist, `X.json` is read instead
and the first write imports it into a new `X.sqlite` (the JSON file is left as it was).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path, PurePath

import numpy as np

from aucues.errors import AucuesError
from aucues.landmark_codec import decode_many, encode
from aucues.landmarks import Face

FORMAT = "aucues-landmarks/2"
LEGACY_FORMAT = "aucues-landmarks/1"
CACHE_NAME = "aucues_landmarks68.sqlite"
_MAGIC = b"SQLite format 3\x00"
# Each commit appends its changed pages to the WAL: 4 KB pages keep one image's commit at ~4 KB of
# writes (16 KB pages measured no smaller a file and four times the writes).
_PAGE_SIZE = 4096
# Above this many keys, one scan of the table beats a query per key.
_SCAN_ABOVE = 2000


def _key(key) -> str:
    return PurePath(key).as_posix() if isinstance(key, os.PathLike) else str(key)


def store_paths(path) -> tuple[Path, Path]:
    """(SQLite store, legacy JSON) of a cache path given as X.json, X.sqlite or any other name."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        return p.with_suffix(".sqlite"), p
    return p, p.with_suffix(".json")


def cache_exists(path) -> bool:
    """Whether a cache (the SQLite store or a legacy JSON file) exists for this cache path."""
    store, legacy = store_paths(path)
    return store.is_file() or legacy.is_file()


def remove_cache(path) -> None:
    """Delete a cache: the store with its WAL side files, and the legacy JSON (for tools that own it)."""
    store, legacy = store_paths(path)
    for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm"), Path(f"{store}-journal"), legacy):
        p.unlink(missing_ok=True)


def _face_from_json(d: dict, where: str) -> Face:
    try:
        box = np.asarray(d["box"], np.float32).reshape(4)
        points = np.asarray(d["points"], np.float32).reshape(68, 2)
        return Face(box=box, points=points, score=float(d["score"]))
    except (KeyError, TypeError, ValueError) as e:
        raise AucuesError(f"{where}: malformed landmark entry ({e})") from None


def _read_legacy(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AucuesError(f"{path}: not a readable landmark cache ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != LEGACY_FORMAT or not isinstance(doc.get("items"), dict):
        raise AucuesError(f"{path}: not a landmark cache (expected format {LEGACY_FORMAT!r})")
    return doc["items"]


def _db_error(path: Path, e: Exception) -> AucuesError:
    return AucuesError(f"{path}: landmark cache error ({e})")


class LandmarkCache:
    """Key -> Face | None (None = recorded missing face). Opens the cache at `path` if it exists.

    Writes are durable at once (one transaction per set(), or per `with cache.batch():` block);
    save() is kept for callers of the JSON era and commits. `readonly=True` never writes (training)."""

    def __init__(self, path, readonly: bool = False):
        self.path, self.legacy_path = store_paths(path)
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._legacy: dict | None = None
        self._key_set: set[str] | None = set()   # None: not read yet (read on first need)
        self._batch = 0
        self._wal = False
        if self.path.exists():
            self._open()
        elif self.legacy_path.is_file():
            self._legacy = _read_legacy(self.legacy_path)
            self._key_set = set(self._legacy)

    # -- the SQLite store -------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_MAGIC))
        except OSError as e:
            raise AucuesError(f"{self.path}: cannot read the landmark cache ({e.strerror})") from None
        if head != _MAGIC:
            raise AucuesError(f"{self.path}: not a landmark cache (not an SQLite file)")
        try:
            if self.readonly:
                db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
            else:
                db = sqlite3.connect(self.path, timeout=30)
            fmt = db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
            if not fmt or fmt[0] != FORMAT:
                db.close()
                raise AucuesError(f"{self.path}: not a landmark cache (expected format {FORMAT!r})")
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None
        self._db = db
        self._key_set = None  # a training run's points_many() never needs the set of all keys

    @property
    def _keys(self) -> set[str]:
        if self._key_set is None:
            try:
                self._key_set = set(next(zip(*self._db.execute("SELECT key FROM items").fetchall()), ()))
            except sqlite3.Error as e:
                raise _db_error(self.path, e) from None
        return self._key_set

    def _create(self) -> None:
        """A new store with the legacy entries (if any), built beside and linked into place: a kill
        during the import leaves no half store that would hide the JSON."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        rows = []
        for k, d in (self._legacy or {}).items():
            f = None if d is None else _face_from_json(d, f"{self.legacy_path}[{k}]")
            rows.append((k, None if f is None else encode(f.box, f.points, f.score)))
        try:
            db = sqlite3.connect(tmp)
            db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            with db:
                db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")
                db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, face BLOB) WITHOUT ROWID")
                db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
                db.executemany("INSERT INTO items VALUES (?, ?)", rows)
            db.close()
            try:  # link, not replace: another process that created the store first keeps its rows
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
            tmp.unlink(missing_ok=True)
        except (sqlite3.Error, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise AucuesError(f"{self.path}: cannot create the landmark cache ({e})") from None
        self._legacy = None
        self._open()

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise AucuesError(f"{self.path}: landmark cache opened read-only")
        if self._db is None:
            self._create()
        if not self._wal:  # only writers switch: a cache opened to read leaves no side files
            try:
                # WAL: a commit appends to the log (no rewrite); NORMAL: no fsync per commit. A killed
                # process loses nothing committed; a power cut at most the last commits, never the file.
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as e:
                raise _db_error(self.path, e) from None
            self._wal = True
        return self._db

    # -- provenance -------------------------------------------------------------------------------
    @property
    def source(self) -> str | None:
        """What made the points (meta row 'source'); None: not recorded (an older aucues, or JSON)."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM meta WHERE name='source'").fetchone()
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None
        return row[0] if row else None

    def set_source(self, source: str) -> None:
        try:
            with self._writable() as db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('source', ?)", (str(source),))
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None

    def adopt_source(self, source: str | None, refresh: bool = False) -> bool:
        """Before a landmarker made by `source` adds to this cache: True if the cache already holds
        entries of another (or an unrecorded) source and `refresh` cleared them (everything is to
        be done again); raises a one-line AucuesError when they differ and `refresh` is False.
        An empty cache, or the same source, just records `source` (None: an anonymous landmarker,
        nothing checked)."""
        if source is None:
            return False
        stale = len(self) > 0 and self.source != source
        if stale and not refresh:
            raise AucuesError(f"{self.path}: its {len(self)} entries were made by {describe_source(self.source)}, "
                              f"not {source}; one dataset must not mix two definitions of the 68 points: "
                              f"run again with --refresh to landmark every image anew (or choose another cache)")
        try:
            with self._writable() as db:
                if stale:  # one transaction: a kill leaves the old cache or an empty new-source one
                    db.execute("DELETE FROM items")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('source', ?)", (str(source),))
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None
        if stale:
            self._key_set = set()
        return stale

    # -- mapping API ------------------------------------------------------------------------------
    def __contains__(self, key) -> bool:
        return _key(key) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        return sorted(self._keys)

    def get(self, key) -> Face | None:
        """The cached Face; None for a recorded missing face; KeyError if never processed."""
        k = _key(key)
        if self._db is None:
            if k not in self._keys:
                raise KeyError(k)
            d = self._legacy[k]
            return None if d is None else _face_from_json(d, f"{self.legacy_path}[{k}]")
        try:
            row = self._db.execute("SELECT face FROM items WHERE key=?", (k,)).fetchone()
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None
        if row is None:
            raise KeyError(k)
        blob = row[0]
        if blob is None:
            return None
        try:
            boxes, points, scores = decode_many([blob])
        except AucuesError:
            raise AucuesError(f"{self.path}[{k}]: malformed landmark entry") from None
        return Face(box=boxes[0], points=points[0], score=float(scores[0]))

    def points(self, key) -> np.ndarray:
        """(68, 2) float32 landmarks, all NaN for a missing face (what AU maps treat as invalid)."""
        face = self.get(key)
        return np.full((68, 2), np.nan, np.float32) if face is None else face.points

    def points_many(self, keys) -> dict[str, np.ndarray]:
        """{key: (68, 2) float32} for those of `keys` that have a face (decoded in one pass); the
        points are always finite (the codec refuses others)."""
        want = {_key(k) for k in keys}
        if self._db is None:
            pts = {k: self.points(k) for k in want & self._keys if self._legacy[k] is not None}
            return {k: p for k, p in pts.items() if np.isfinite(p).all()}  # JSON could hold NaN
        try:
            if len(want) > _SCAN_ABOVE:  # one scan of the table beats a query per key
                rows = [(k, b) for k, b in self._db.execute("SELECT key, face FROM items WHERE face IS NOT NULL")
                        if k in want]
            else:
                q = "SELECT key, face FROM items WHERE key=? AND face IS NOT NULL"
                rows = [r for k in want for r in self._db.execute(q, (k,))]
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None
        _, points, _ = decode_many([b for _, b in rows])
        return dict(zip([k for k, _ in rows], points))

    def set(self, key, face: Face | None) -> None:
        """Record `key` (a Face, or None for no face); committed at once unless inside batch()."""
        k = _key(key)
        blob = None if face is None else encode(face.box, face.points, face.score)
        db = self._writable()
        try:
            db.execute("INSERT OR REPLACE INTO items VALUES (?, ?)", (k, blob))
            if not self._batch:
                db.commit()
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None
        if self._key_set is not None:
            self._key_set.add(k)

    @contextlib.contextmanager
    def batch(self):
        """Many set()s in one transaction (bulk writers such as the synthetic dataset)."""
        db = self._writable()
        self._batch += 1
        try:
            yield self
        finally:
            self._batch -= 1
            if not self._batch:
                db.commit()

    def save(self) -> None:
        """Commit (a no-op after plain set()s); creates an empty store if none exists yet."""
        try:
            self._writable().commit()
        except sqlite3.Error as e:
            raise _db_error(self.path, e) from None

    def close(self) -> None:
        """Commit and close. The store is left in rollback-journal mode, one self-contained file that
        a read-only folder can open (a WAL database needs its -shm file)."""
        if self._db is None:
            return
        db, self._db = self._db, None
        wal, self._wal = self._wal, False
        try:
            db.commit()
            if wal:
                db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass  # another connection still has it open: it stays in WAL mode, which is fine
        finally:
            db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_for_landmarker(path, landmarker, refresh: bool = False) -> tuple[LandmarkCache, int]:
    """(the cache at `path` ready to take `landmarker`'s points, number of entries of another source
    that `refresh` cleared); refused in one line (and closed) when they differ without `refresh`."""
    cache = LandmarkCache(path)
    try:
        n_before = len(cache)
        return cache, (n_before if cache.adopt_source(getattr(landmarker, "source", None), refresh) else 0)
    except BaseException:
        cache.close()
        raise


def other_mesh_mapping(source: str | None) -> bool:
    """Whether points of this recorded source may follow another 468 -> 68 mapping than today's: not
    recorded (an aucues before sources were), or the mesh family at another version."""
    from aucues.landmarks import MESH68_SOURCE

    family = MESH68_SOURCE.split("/")[0]
    return source is None or (source != MESH68_SOURCE and source.split("/")[0] == family)


def describe_source(source: str | None) -> str:
    """A reader's words for a cache's recorded source (None: not recorded)."""
    from aucues.landmarks import MESH68_SOURCE

    if source is None:
        return ("an unrecorded source (an aucues before 2026-12-03: MediaPipe points there follow the older "
                "468 -> 68 mapping, without the pose-aware jaw, brow and lid resampling)")
    if other_mesh_mapping(source):
        return f"{source} (another version of the 468 -> 68 mapping than today's {MESH68_SOURCE})"
    return source
