"""``Library``: the SQLite file that knows every analyzed video and its searchable moments.

Tables: ``videos`` (one row per distinct file content, keyed by ``VideoMeta.content_hash``: a video
that moved or was copied is the same entry, found again by its hash), ``moments`` (text with start
and end seconds, the analyzer and the kind), ``moments_fts`` (an FTS5 index over ``moments.text``,
kept in step by triggers), ``text_vectors`` (sentence embeddings, keyed by model and a hash of the
text, filled on first semantic search) and ``shot_vectors`` (CLIP image embeddings from the runs).

Every method opens (once per thread) its own connection, so one ``Library`` serves a web server's
threads; writes are short transactions in WAL mode, so searches go on while a run is added.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import EXIT_INPUT, FrameworkError
from .paths import library_path

if TYPE_CHECKING:
    from ..timeline import Timeline

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos(
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a number in a link names one video for good
  content_hash TEXT NOT NULL UNIQUE,
  path TEXT NOT NULL,
  name TEXT NOT NULL,
  size_bytes INTEGER, duration REAL, width INTEGER, height INTEGER, fps REAL,
  has_video INTEGER NOT NULL DEFAULT 0, has_audio INTEGER NOT NULL DEFAULT 0,
  container TEXT, video_codec TEXT,
  run_dir TEXT NOT NULL,
  results_mtime_ns INTEGER,
  title TEXT, summary TEXT,
  tracks TEXT NOT NULL DEFAULT '{}',
  added_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS videos_by_run ON videos(run_dir);
CREATE TABLE IF NOT EXISTS moments(
  id INTEGER PRIMARY KEY,
  video_id INTEGER NOT NULL,
  analyzer TEXT NOT NULL,
  kind TEXT NOT NULL,
  label TEXT NOT NULL,
  t_start REAL NOT NULL,
  t_end REAL NOT NULL,
  text TEXT NOT NULL,
  text_key INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS moments_by_video ON moments(video_id, t_start);
CREATE INDEX IF NOT EXISTS moments_by_text ON moments(text_key);
CREATE VIRTUAL TABLE IF NOT EXISTS moments_fts USING fts5(
  text, content='moments', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS moments_ai AFTER INSERT ON moments BEGIN
  INSERT INTO moments_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS moments_ad AFTER DELETE ON moments BEGIN
  INSERT INTO moments_fts(moments_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE IF NOT EXISTS text_vectors(
  model TEXT NOT NULL, text_key INTEGER NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (model, text_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shot_vectors(
  id INTEGER PRIMARY KEY,
  video_id INTEGER NOT NULL,
  analyzer TEXT NOT NULL,
  model TEXT NOT NULL,
  t_start REAL NOT NULL,
  t_end REAL NOT NULL,
  vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS shot_vectors_by_model ON shot_vectors(model, video_id);
"""


class LibraryError(FrameworkError):
    """A library request that cannot be done: an unknown video, an unreadable run folder."""

    exit_code = EXIT_INPUT


@dataclass
class VideoRecord:
    """One video of the library: where it is, where its run folder is, and what it holds."""

    id: int
    content_hash: str
    path: str
    name: str
    run_dir: str
    duration: float | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    has_video: bool = False
    has_audio: bool = False
    container: str | None = None
    video_codec: str | None = None
    title: str | None = None
    summary: str | None = None
    tracks: dict[str, str] = field(default_factory=dict)
    moments: int = 0
    added_at: float = 0.0
    updated_at: float = 0.0
    results_mtime_ns: int | None = None
    moved_from: str | None = None  # set by ``add_*`` when the entry's file was elsewhere before
    copy_at: str | None = None     # set by ``add_*`` when the added file is a copy of this entry's file

    @property
    def report(self) -> Path:
        return Path(self.run_dir) / "report.html"

    @property
    def file_exists(self) -> bool:
        return Path(self.path).is_file()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["report"] = str(self.report)
        d["file_exists"] = self.file_exists
        return d


@dataclass(frozen=True)
class Moment:
    """A stored moment: text between ``start`` and ``end`` seconds of one video."""

    id: int
    video_id: int
    analyzer: str
    kind: str
    label: str
    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReindexReport:
    """What ``Library.reindex`` did."""

    updated: list[VideoRecord] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)   # (name, why)
    moved: list[tuple[str, str]] = field(default_factory=list)     # (old path, new path)
    missing: list[VideoRecord] = field(default_factory=list)       # file not found (entry kept)


def text_key(text: str) -> int:
    """A 64-bit key of ``text`` (sentence vectors are stored once per distinct text and model)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def report_link(run_dir: str | os.PathLike, t: float | None = None) -> str:
    """``file://.../report.html#t=12.34``: the report, its player at ``t`` seconds."""
    uri = (Path(run_dir) / "report.html").resolve().as_uri()
    return uri if t is None else f"{uri}#t={max(0.0, t):.2f}"


class Library:
    """The library database at ``path`` (created on first use, with its folder).

    :param path: the SQLite file (``library_path(None)``: ``$FRAMEWORK_LIBRARY`` or
        ``$FRAMEWORK_HOME/library/library.db``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._local = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()
        self.cache: dict[Any, Any] = {}  # search's vector matrices, keyed with ``generation()``

    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> "Library":
        """The library at ``path`` (a file, or a folder holding ``library.db``), or the default one."""
        return cls(library_path(path))

    @property
    def folder(self) -> Path:
        """The library's folder: ``uploads/``, ``downloads/`` and ``runs/`` live here."""
        return self.path.parent

    # --- connections ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is not None:
            return db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=True)
        except (OSError, sqlite3.Error) as exc:
            raise LibraryError(f"library {self.path}: cannot open it ({exc})") from None
        db.row_factory = sqlite3.Row
        with self._ready_lock:
            if not self._ready:
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0')")
                    db.commit()
                except sqlite3.DatabaseError as exc:
                    db.close()
                    raise LibraryError(f"library {self.path}: not a library database ({exc}); "
                                       "pass another --library PATH") from None
                version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
                if version != SCHEMA_VERSION:
                    db.close()
                    raise LibraryError(f"library {self.path} has schema {version}; this framework reads "
                                       f"{SCHEMA_VERSION}: move it aside and run `framework library add` on the run folders")
                self._ready = True
        db.execute("PRAGMA synchronous=NORMAL")
        self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def generation(self) -> int:
        """A number that changes whenever the library changes (search caches key on it)."""
        return int(self._connect().execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    # --- adding ---------------------------------------------------------------------------------
    def add_run(self, run_dir: str | os.PathLike, force: bool = False,
                timeline: "Timeline | None" = None) -> VideoRecord:
        """Index a run folder (its ``results.json``); a video already in the library is updated.

        A run folder indexed as its ``results.json`` is now is not read again unless ``force``.
        ``timeline``: what that ``results.json`` holds, when the caller just wrote it (not read back).
        """
        from ..timeline import Timeline

        run_dir = Path(run_dir)
        results = run_dir / "results.json"
        if not force:
            current = self.indexed_id(run_dir)
            if current is not None:
                return self.get(current)
        try:
            mtime = results.stat().st_mtime_ns
            timeline = timeline if timeline is not None else Timeline.read(results)
        except FileNotFoundError:
            raise LibraryError(f"{run_dir}: no results.json there; is it a run folder of `framework run`?") from None
        except (OSError, ValueError) as exc:
            raise LibraryError(f"{results}: cannot read it ({exc})") from None
        return self.add_timeline(timeline, run_dir, results_mtime_ns=mtime)

    def indexed_id(self, run_dir: str | os.PathLike) -> int | None:
        """The video's number if the run folder is indexed as its ``results.json`` is now, else None."""
        run_dir = Path(run_dir).resolve()
        try:
            mtime = (run_dir / "results.json").stat().st_mtime_ns
        except OSError:
            return None
        row = self._connect().execute("SELECT id FROM videos WHERE run_dir=? AND results_mtime_ns=?",
                                      (str(run_dir), mtime)).fetchone()
        return None if row is None else row[0]

    def add_timeline(self, timeline: "Timeline", run_dir: str | os.PathLike,
                     results_mtime_ns: int | None = None) -> VideoRecord:
        """Index ``timeline`` (written in ``run_dir``): its metadata, moments and shot embeddings."""
        from .extract import moments_of, shot_embeddings_of, title_and_summary

        v = timeline.video
        run_dir = Path(run_dir).resolve()
        rows = moments_of(timeline)
        shots = shot_embeddings_of(timeline)
        title, summary = title_and_summary(timeline)
        tracks = json.dumps({n: t.status for n, t in timeline.tracks.items()})
        now = time.time()
        values = dict(content_hash=v.content_hash, path=v.path, name=Path(v.path).name, size_bytes=v.size_bytes,
                      duration=v.duration, width=v.width, height=v.height, fps=v.fps, has_video=int(v.has_video),
                      has_audio=int(v.has_audio), container=v.container, video_codec=v.video_codec,
                      run_dir=str(run_dir), results_mtime_ns=results_mtime_ns, title=title, summary=summary,
                      tracks=tracks, updated_at=now)
        moved_from = copy_at = None
        with self._tx() as db:
            # an older version of the file analyzed into this same run folder: that entry is gone
            for (other,) in db.execute("SELECT id FROM videos WHERE run_dir=? AND content_hash<>?",
                                       (str(run_dir), v.content_hash)).fetchall():
                self._delete(db, other)
            old = db.execute("SELECT id, path, run_dir FROM videos WHERE content_hash=?", (v.content_hash,)).fetchone()
            if (old is not None and old["path"] != v.path and old["run_dir"] != str(run_dir)
                    and Path(old["path"]).is_file()):
                copy_at = v.path  # a second copy of a file the library has: one entry per content
                vid = old["id"]
            elif old is not None:
                vid = old["id"]
                if old["path"] != v.path:
                    moved_from = old["path"]
                sets = ", ".join(f"{k}=:{k}" for k in values)
                db.execute(f"UPDATE videos SET {sets} WHERE id=:id", {**values, "id": vid})
                db.execute("DELETE FROM moments WHERE video_id=?", (vid,))
                db.execute("DELETE FROM shot_vectors WHERE video_id=?", (vid,))
            else:
                cols = [*values, "added_at"]
                vid = db.execute(f"INSERT INTO videos({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})",
                                 {**values, "added_at": now}).lastrowid
            if copy_at is not None:
                rows, shots = [], []
            db.executemany(
                "INSERT INTO moments(video_id, analyzer, kind, label, t_start, t_end, text, text_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(vid, r.analyzer, r.kind, r.label, r.start, r.end, r.text, text_key(r.text)) for r in rows])
            import numpy as np

            db.executemany(
                "INSERT INTO shot_vectors(video_id, analyzer, model, t_start, t_end, vector) VALUES (?, ?, ?, ?, ?, ?)",
                [(vid, s.analyzer, s.model, a, b, np.asarray(vec, dtype="<f2").tobytes())
                 for s in shots for (a, b), vec in zip(s.times, s.vectors)])
        record = self.get(vid)
        record.moved_from, record.copy_at = moved_from, copy_at
        if copy_at:
            logger.info("library: %s has the same content as #%d (%s); the library keeps one entry",
                        copy_at, vid, record.path)
        return record

    # --- reading --------------------------------------------------------------------------------
    _VIDEO_COLUMNS = ("v.*, (SELECT count(*) FROM moments m WHERE m.video_id = v.id) AS moments")

    def _record(self, row: sqlite3.Row) -> VideoRecord:
        d = dict(row)
        d["tracks"] = json.loads(d.get("tracks") or "{}")
        d["has_video"], d["has_audio"] = bool(d["has_video"]), bool(d["has_audio"])
        return VideoRecord(**d)

    def get(self, video_id: int) -> VideoRecord:
        row = self._connect().execute(f"SELECT {self._VIDEO_COLUMNS} FROM videos v WHERE id=?", (video_id,)).fetchone()
        if row is None:
            raise LibraryError(f"video #{video_id} is not in the library {self.path}")
        return self._record(row)

    def videos(self) -> list[VideoRecord]:
        """Every video, most recently analyzed first."""
        rows = self._connect().execute(f"SELECT {self._VIDEO_COLUMNS} FROM videos v ORDER BY updated_at DESC, id DESC")
        return [self._record(r) for r in rows]

    def count(self) -> int:
        return self._connect().execute("SELECT count(*) FROM videos").fetchone()[0]

    def find(self, ref: str | os.PathLike | int) -> VideoRecord:
        """A video by its number (``3`` or ``#3``), a file (found by content hash if it moved), a run
        folder, a content-hash prefix (``b2:1f3a``/``1f3a9c``) or its file name (``clip.mp4``/``clip``).

        :raises LibraryError: nothing matches, or the name matches several videos (they are listed).
        """
        db = self._connect()
        text = str(ref).strip()
        number = text[1:] if text.startswith("#") else text
        if number.isdigit():
            return self.get(int(number))
        path = Path(os.path.expanduser(text))
        if path.is_file():
            row = db.execute("SELECT id FROM videos WHERE path=?", (str(path.resolve()),)).fetchone()
            if row is None:
                from ..media.probing import file_hash

                row = db.execute("SELECT id FROM videos WHERE content_hash=?", (file_hash(path),)).fetchone()
            if row is not None:
                return self.get(row["id"])
            raise LibraryError(f"{text}: this file is not in the library {self.path} (not under this path, "
                               "and no entry has its content); analyze it with `framework run`")
        if path.is_dir():
            row = db.execute("SELECT id FROM videos WHERE run_dir=?", (str(path.resolve()),)).fetchone()
            if row is not None:
                return self.get(row["id"])
        hexpart = text[3:] if text.startswith("b2:") else text
        if len(hexpart) >= 6 and all(c in "0123456789abcdef" for c in hexpart.lower()):
            rows = db.execute("SELECT id FROM videos WHERE content_hash LIKE ?", (f"b2:{hexpart.lower()}%",)).fetchall()
            if len(rows) == 1:
                return self.get(rows[0]["id"])
        rows = db.execute("SELECT id, path FROM videos WHERE name=? COLLATE NOCASE", (text,)).fetchall()
        if not rows:  # the name without its extension
            rows = [r for r in db.execute("SELECT id, path FROM videos").fetchall()
                    if Path(r["path"]).stem.casefold() == text.casefold()]
        if len(rows) == 1:
            return self.get(rows[0]["id"])
        if len(rows) > 1:
            listed = "; ".join(f"#{r['id']} {r['path']}" for r in rows)
            raise LibraryError(f"{text!r} names {len(rows)} videos of the library: {listed}; give the number instead")
        raise LibraryError(f"{text!r} is not in the library {self.path} ({self.count()} videos); "
                           "`framework library list` shows them")

    def moments(self, video_id: int, start: float | None = None, end: float | None = None,
                analyzers: list[str] | None = None) -> list[Moment]:
        """The video's moments overlapping ``[start, end]`` (all when not given), in time order."""
        sql = "SELECT id, video_id, analyzer, kind, label, t_start, t_end, text FROM moments WHERE video_id=?"
        args: list[Any] = [video_id]
        if start is not None:
            sql += " AND t_end >= ?"
            args.append(start)
        if end is not None:
            sql += " AND t_start <= ?"
            args.append(end)
        if analyzers:
            sql += f" AND analyzer IN ({', '.join('?' * len(analyzers))})"
            args += list(analyzers)
        rows = self._connect().execute(sql + " ORDER BY t_start, t_end, id", args)
        return [Moment(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]

    def events(self, video_id: int, start: float, end: float, analyzers: list[str] | None = None,
               limit: int = 500) -> list[dict[str, Any]]:
        """Every event of the video's run (``results.json``) overlapping ``[start, end]``, text or not."""
        from ..timeline import Timeline

        record = self.get(video_id)
        try:
            timeline = Timeline.read(Path(record.run_dir) / "results.json")
        except (OSError, ValueError) as exc:
            raise LibraryError(f"{record.name}: its run folder {record.run_dir} cannot be read ({exc}); "
                               "`framework library reindex` drops entries whose run folder is gone") from None
        out = []
        for track in timeline.tracks.values():
            if track.status != "ok" or (analyzers and track.analyzer not in analyzers):
                continue
            for ev in track.events:
                if ev.end >= start and ev.start <= end:
                    item = {"analyzer": track.analyzer, "label": ev.label, "start": ev.start, "end": ev.end}
                    if ev.score is not None:
                        item["score"] = ev.score
                    if isinstance(ev.data.get("text"), str):
                        item["text"] = ev.data["text"]
                    out.append(item)
        out.sort(key=lambda x: (x["start"], x["end"], x["analyzer"]))
        return out[:limit]

    # --- removing and reindexing ----------------------------------------------------------------
    @staticmethod
    def _delete(db: sqlite3.Connection, video_id: int) -> None:
        db.execute("DELETE FROM moments WHERE video_id=?", (video_id,))
        db.execute("DELETE FROM shot_vectors WHERE video_id=?", (video_id,))
        db.execute("DELETE FROM videos WHERE id=?", (video_id,))

    def remove(self, ref: str | os.PathLike | int) -> VideoRecord:
        """Take a video out of the library (its file and run folder are left alone)."""
        record = self.find(ref)
        with self._tx() as db:
            self._delete(db, record.id)
        return record

    def reindex(self, scan: list[str | os.PathLike] = ()) -> ReindexReport:
        """Read every run folder again (new index rules, edited results) and rebuild the text index.

        Entries whose run folder (or its ``results.json``) is gone are removed. A video whose file is
        no longer at its recorded path is looked for in the ``scan`` folders, by content hash (files of
        the same size are hashed); found, its path is updated; not found, the entry stays, listed as missing.
        """
        report = ReindexReport()
        for record in self.videos():
            run_dir = Path(record.run_dir)
            if not (run_dir / "results.json").is_file():
                with self._tx() as db:
                    self._delete(db, record.id)
                report.removed.append((record.name, f"{run_dir / 'results.json'} is gone"))
                continue
            try:
                updated = self.add_run(run_dir, force=True)
            except LibraryError as exc:
                report.removed.append((record.name, str(exc)))
                with self._tx() as db:
                    self._delete(db, record.id)
                continue
            report.updated.append(updated)
        missing = [r for r in report.updated if not r.file_exists]
        if missing and scan:
            found = self._scan_for(missing, scan)
            with self._tx() as db:
                for record in missing:
                    new = found.get(record.content_hash)
                    if new is not None:
                        db.execute("UPDATE videos SET path=?, name=? WHERE id=?", (str(new), new.name, record.id))
                        report.moved.append((record.path, str(new)))
        moved = {old for old, _ in report.moved}
        report.missing = [r for r in missing if r.path not in moved]
        with self._tx() as db:
            db.execute("INSERT INTO moments_fts(moments_fts) VALUES ('rebuild')")
            db.execute("DELETE FROM text_vectors WHERE text_key NOT IN (SELECT text_key FROM moments)")
        return report

    @staticmethod
    def _scan_for(records: list[VideoRecord], folders: list[str | os.PathLike]) -> dict[str, Path]:
        from ..media.probing import file_hash
        from .inputs import expand_inputs

        sizes = {r.size_bytes for r in records}
        wanted = {r.content_hash for r in records}
        found: dict[str, Path] = {}
        for candidate in expand_inputs([str(f) for f in folders]):
            try:
                if not candidate.is_file() or candidate.stat().st_size not in sizes:
                    continue
                digest = file_hash(candidate)
            except OSError:
                continue
            if digest in wanted and digest not in found:
                found[digest] = candidate.resolve()
        return found

    # --- vectors (semantic search) ----------------------------------------------------------------
    def texts_without_vectors(self, model: str) -> list[tuple[int, str]]:
        """``(text_key, text)`` of every distinct moment text that has no ``model`` vector yet."""
        db = self._connect()
        keys = [r[0] for r in db.execute(
            "SELECT DISTINCT m.text_key FROM moments m WHERE NOT EXISTS "
            "(SELECT 1 FROM text_vectors t WHERE t.model = ? AND t.text_key = m.text_key)", (model,))]
        out: list[tuple[int, str]] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            out += db.execute(f"SELECT text_key, min(text) FROM moments WHERE text_key IN ({', '.join('?' * len(chunk))}) "
                              "GROUP BY text_key", chunk).fetchall()
        return [(k, t) for k, t in out]

    def store_text_vectors(self, model: str, keys: list[int], vectors: Any) -> None:
        """Keep sentence vectors (float16) of the texts with these keys."""
        import numpy as np

        arr = np.asarray(vectors, dtype="<f2")
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO text_vectors(model, text_key, vector) VALUES (?, ?, ?)",
                           [(model, k, arr[i].tobytes()) for i, k in enumerate(keys)])

    def text_vectors(self, model: str) -> tuple[Any, Any, list[str], Any]:
        """``(moment ids, video ids, analyzers, unit vectors)`` of every moment with a ``model`` vector."""
        import numpy as np

        rows = self._connect().execute(
            "SELECT m.id, m.video_id, m.analyzer, t.vector FROM moments m JOIN text_vectors t "
            "ON t.model = ? AND t.text_key = m.text_key ORDER BY m.id", (model,)).fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64),
                [r[2] for r in rows], _matrix([r[3] for r in rows]))

    def shot_models(self) -> list[str]:
        """The CLIP models the library's shot embeddings were made with."""
        return [r[0] for r in self._connect().execute("SELECT DISTINCT model FROM shot_vectors ORDER BY model")]

    def shot_vectors(self, model: str) -> tuple[Any, Any, list[str], Any, Any]:
        """``(shot ids, video ids, analyzers, [start, end] array, unit vectors)`` made by ``model``."""
        import numpy as np

        rows = self._connect().execute(
            "SELECT id, video_id, analyzer, t_start, t_end, vector FROM shot_vectors WHERE model = ? ORDER BY id",
            (model,)).fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64),
                [r[2] for r in rows], np.array([[r[3], r[4]] for r in rows], dtype=np.float64).reshape(-1, 2),
                _matrix([r[5] for r in rows]))

    def moments_by_id(self, ids: list[int]) -> dict[int, Moment]:
        if not ids:
            return {}
        db = self._connect()
        out: dict[int, Moment] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for r in db.execute("SELECT id, video_id, analyzer, kind, label, t_start, t_end, text FROM moments "
                                f"WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
                out[r[0]] = Moment(*r)
        return out

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (for the search module's read-only queries)."""
        return self._connect()


def _matrix(blobs: list[bytes]) -> Any:
    """float16 blobs of one length -> a float32 ``n x dim`` array (empty: ``0 x 0``)."""
    import numpy as np

    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    dim = len(blobs[0]) // 2
    return np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(blobs), dim).astype(np.float32)
