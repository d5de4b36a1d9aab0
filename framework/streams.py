"""Disk-backed frame streams and audio, produced by the single decode pass.

A ``FrameSpec`` is what an analyzer asks for (rate, size, pixel format). The decoder writes
each distinct spec to its own ``FrameStream`` folder in the run's cache; analyzers read it
back through positional reads (``DiskArray``), so RAM stays bounded however long the video is.

A stream folder holds ``meta.json``, ``times.npy`` and its frames: ``frames.u8`` (every frame,
in order), or, for a stream decoded in parallel segments, the segments' own frame files, listed
in ``meta.json`` as ``pieces`` ([file relative to the folder, first frame in it, frames]) and
read in that order without ever being copied into one file.

A stream may also hold per-frame *features* in ``features/``: arrays with a row per frame that an
analyzer asked the decode to compute on each segment as soon as that segment was decoded
(``Analyzer.stream_features``; ``framework.media.segments``), so that they are ready when the stream
is. Each is one ``.npz`` (``feature_file``), joined from the segments' own in order, with
``PART_STARTS``: the rows where a segment began, whose values a feature that compares a frame with
the one before could not know (the analyzer recomputes those rows).
"""
from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import os
import shutil
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Literal

import numpy as np

logger = logging.getLogger(__name__)

PixFmt = Literal["rgb24", "gray"]
AUDIO_SAMPLE_RATE = 16_000
_CHANNELS = {"rgb24": 3, "gray": 1}
WRITE_BUFFER = 1 << 20  # bytes: frames are appended in ~1 MiB writes, not one syscall per frame
FEATURES = "features"  # a stream folder's subfolder of per-frame features
PART_STARTS = "_part_starts"  # in a joined feature file: the rows where a segment began


def feature_file(folder: Path, function: str, kwargs: dict[str, Any] | None = None) -> Path:
    """Where stream ``folder`` keeps the per-frame features ``function(frames, **kwargs)`` computed
    (``function`` as ``"module:name"``; the keyword arguments are part of the file's name)."""
    digest = hashlib.sha1(json.dumps(kwargs or {}, sort_keys=True).encode()).hexdigest()[:10]
    return Path(folder) / FEATURES / f"{function.replace(':', '.')}-{digest}.npz"


class DiskArray:
    """A read-only array of fixed-size items in a file, read with ``os.pread`` on each index.

    Supports ``len``, ``shape``, ``a[i]``, ``a[start:stop:step]``, ``a[index_array]``, ``a[mask]``
    and a tuple whose first element is one of those (``a[:, ::2]``); every read returns a fresh
    ndarray. Unlike ``np.memmap``, pages read once do not stay mapped into the process, so the
    resident memory of an analyzer that walks a two-hour stream stays that of one block.
    Reads are positional, hence safe from several threads.

    :param pieces: the items are these runs of other files, in order (each ``(file, first item
        in it, items)``), instead of the first ``count`` items of ``path``; ``count`` is their sum.
    """

    def __init__(self, path: Path, dtype: np.dtype | type, item_shape: tuple[int, ...], count: int,
                 pieces: list[tuple[Path, int, int]] | None = None):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.item_shape = tuple(item_shape)
        self._count = int(count)
        self._item_bytes = int(np.prod(self.item_shape, dtype=np.int64)) * self.dtype.itemsize
        self._pieces = [(Path(f), int(first), int(n)) for f, first, n in pieces if int(n) > 0] \
            if pieces is not None else [(self.path, 0, self._count)]
        if sum(n for _, _, n in self._pieces) != self._count:
            raise ValueError(f"{self.path}: pieces hold {sum(n for _, _, n in self._pieces)} items, not {self._count}")
        self._ends = np.cumsum([n for _, _, n in self._pieces]).tolist()  # item index after each piece
        self._fds: list[int | None] = [None] * len(self._pieces)
        self._opening = threading.Lock()  # files are opened on their first read, once for all threads

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._count, *self.item_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    def __len__(self) -> int:
        return self._count

    def _fd(self, piece: int) -> int:
        fd = self._fds[piece]
        if fd is None:
            with self._opening:
                fd = self._fds[piece]
                if fd is None:
                    fd = self._fds[piece] = os.open(self._pieces[piece][0], os.O_RDONLY)
        return fd

    def _read(self, start: int, stop: int) -> np.ndarray:
        n = max(0, stop - start)
        if n == 0:
            return np.zeros((0, *self.item_shape), dtype=self.dtype)
        buf = np.empty(n * self._item_bytes, dtype=np.uint8)  # filled below: no zeroing pass
        view, pos = memoryview(buf), 0
        piece = bisect.bisect_right(self._ends, start)
        while start < stop:  # the run of items in each piece the range covers
            path, first, _ = self._pieces[piece]
            begin = self._ends[piece - 1] if piece else 0
            take = min(stop, self._ends[piece]) - start
            want = take * self._item_bytes
            offset, got = (first + start - begin) * self._item_bytes, 0
            while got < want:
                chunk = os.preadv(self._fd(piece), [view[pos + got:pos + want]], offset + got)
                if chunk <= 0:
                    raise IOError(f"{path}: cache file is shorter than expected (read {got} of {want} bytes)")
                got += chunk
            start, pos, piece = start + take, pos + want, piece + 1
        return buf.view(self.dtype).reshape(n, *self.item_shape)

    def _take(self, index: np.ndarray) -> np.ndarray:
        if len(index) and bool(np.all(np.diff(index) == 1)):  # one run in order: read it as is
            return self._read(int(index[0]), int(index[-1]) + 1)
        out = np.empty((len(index), *self.item_shape), dtype=self.dtype)
        if len(index) == 0:
            return out
        order = np.argsort(index, kind="stable")
        sorted_idx = index[order]
        breaks = np.flatnonzero(np.diff(sorted_idx) > 1) + 1  # read contiguous runs in one call
        for run in np.split(np.arange(len(sorted_idx)), breaks):
            lo, hi = int(sorted_idx[run[0]]), int(sorted_idx[run[-1]]) + 1
            block = self._read(lo, hi)
            out[order[run]] = block[sorted_idx[run] - lo]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._count if key < 0 else 0)
            if not 0 <= i < self._count:
                raise IndexError(f"index {int(key)} out of range for {self._count} items")
            item = self._read(i, i + 1)[0]
            return item[rest] if rest else item
        if isinstance(key, slice):
            start, stop, step = key.indices(self._count)
            if step == 1:
                arr = self._read(start, max(start, stop))
            else:
                arr = self._take(np.arange(start, stop, step))
        else:
            index = np.asarray(key)
            if index.dtype == bool:
                index = np.flatnonzero(index)
            index = np.where(index < 0, index + self._count, index).astype(np.int64)
            if index.size and (index.min() < 0 or index.max() >= self._count):
                raise IndexError(f"index out of range for {self._count} items")
            arr = self._take(index.reshape(-1)).reshape(*index.shape, *self.item_shape)
        return arr[(slice(None), *rest)] if rest else arr

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[:]
        return arr.astype(dtype) if dtype is not None else arr

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", ()):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


@dataclass(frozen=True)
class FrameSpec:
    """A frame stream an analyzer needs.

    :param fps: frames per second to sample by presentation time; ``None`` means every frame.
    :param width: output width in pixels; ``None`` keeps the aspect ratio from ``height``
        (or the source width if both are ``None``).
    :param height: output height in pixels, likewise.
    :param pix_fmt: ``"rgb24"`` (H, W, 3) or ``"gray"`` (H, W).
    """

    fps: float | None = None
    width: int | None = None
    height: int | None = None
    pix_fmt: PixFmt = "rgb24"

    def __post_init__(self) -> None:
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"FrameSpec fps must be positive or None, got {self.fps}")
        if self.pix_fmt not in _CHANNELS:
            raise ValueError(f"FrameSpec pix_fmt must be one of {sorted(_CHANNELS)}, got {self.pix_fmt!r}")

    @property
    def key(self) -> str:
        fps = "all" if self.fps is None else f"{self.fps:g}"
        return f"fps{fps}_{self.width or 'auto'}x{self.height or 'auto'}_{self.pix_fmt}"

    def output_size(self, src_width: int, src_height: int) -> tuple[int, int]:
        """The (width, height) this spec yields for a source of the given display size (even numbers)."""
        w, h = self.width, self.height
        if w is None and h is None:
            w, h = src_width, src_height
        elif w is None:
            w = round(src_width * h / src_height)
        elif h is None:
            h = round(src_height * w / src_width)
        return max(2, int(w) // 2 * 2), max(2, int(h) // 2 * 2)

    @property
    def channels(self) -> int:
        return _CHANNELS[self.pix_fmt]


class FrameStreamWriter:
    """Appends frames and their timestamps to a stream folder (used by the decoder): frames it is
    given (``write``) and, by reference, the frames of other streams (``append``)."""

    def __init__(self, folder: Path, spec: FrameSpec, width: int, height: int, anchor: float | None = None):
        """:param anchor: time (s) of the sampling grid's origin when ``spec.fps`` is set; by
            default the first frame offered to ``wants``."""
        self.folder = folder
        self.spec = spec
        self.width, self.height = width, height
        folder.mkdir(parents=True, exist_ok=True)
        self._frames: BinaryIO | None = None  # frames.u8, opened by the first ``write``
        self._written = 0  # frames in frames.u8
        self._times = array("d")  # 8 bytes a frame: a two-hour all-frames stream holds ~1.7 MB
        self._pieces: list[list] | None = None  # set by ``append``: [file, first, frames] runs, in order
        self.anchor = anchor
        self.last_cell: int | None = None  # grid cell of the last frame offered to ``wants``
        self._part_features: list[tuple[Path, int]] = []  # each appended part's features folder, its skip
        shutil.rmtree(folder / FEATURES, ignore_errors=True)  # (an earlier decode's: they described other frames)

    def cell(self, t: float) -> int:
        """Index of the sampling-grid interval (``1 / spec.fps`` long) holding time ``t``;
        timestamp jitter of a thousandth of an interval is tolerated."""
        assert self.spec.fps is not None and self.anchor is not None
        return math.floor((t - self.anchor) * self.spec.fps + 1e-3)

    def wants(self, t: float) -> bool:
        """Whether the frame presented at ``t`` seconds is sampled: every frame when ``spec.fps``
        is None, else the first frame of each grid interval. Offer every decoded frame, in order."""
        if self.spec.fps is None:
            return True
        if self.anchor is None:
            self.anchor = t
        cell = self.cell(t)
        new = self.last_cell is None or cell > self.last_cell
        if new:
            self.last_cell = cell
        return new

    def write(self, t: float, pixels: np.ndarray) -> None:
        expected = (self.height, self.width) if self.spec.channels == 1 else (self.height, self.width, 3)
        if pixels.shape != expected:
            raise ValueError(f"stream {self.spec.key}: frame shape {pixels.shape}, expected {expected}")
        if self._frames is None:
            self._frames = open(self.folder / "frames.u8", "wb", buffering=WRITE_BUFFER)
        self._frames.write(np.ascontiguousarray(pixels, dtype=np.uint8).data)  # no bytes copy
        self._times.append(float(t))
        if self._pieces is not None:
            self._add_piece(self.folder / "frames.u8", self._written, 1)
        self._written += 1

    def append(self, part: "FrameStream", skip: int = 0) -> None:
        """Append the frames of another stream of the same spec and size (a decoded segment),
        leaving out its first ``skip`` frames. They are not copied: this stream reads them from
        ``part``'s files, which must stay where they are (in the same run cache) as long as it is read."""
        if (part.width, part.height) != (self.width, self.height):
            raise ValueError(f"stream {self.spec.key}: part of size {part.width}x{part.height}, "
                             f"expected {self.width}x{self.height}")
        if self._pieces is None:  # from now on every frame's file is recorded
            self._pieces = []
            if self._written:
                self._add_piece(self.folder / "frames.u8", 0, self._written)
        left = skip
        for path, first, count in part.pieces():
            dropped = min(left, count)
            left -= dropped
            self._add_piece(path, first + dropped, count - dropped)
        self._times.extend(part.times[skip:].tolist())
        self._part_features.append((part.folder / FEATURES, skip))  # (read at close: they may come after the frames)

    def _join_features(self) -> None:
        """The features every appended part has, joined in order into this stream's (none when frames were also
        written here, or a part lacks one: an analyzer then computes what it needs from the frames)."""
        if not self._part_features or self._written:
            return
        names = set.intersection(*({f.name for f in folder.glob("*.npz")} if folder.is_dir() else set()
                                   for folder, _ in self._part_features))
        for name in sorted(names):
            joined: dict[str, list[np.ndarray]] = {}
            starts, row = [], 0
            try:
                for folder, skip in self._part_features:
                    with np.load(folder / name) as part:
                        arrays = {k: part[k][skip:] for k in part.files if k != PART_STARTS}
                    if arrays:
                        starts.append(row)
                        row += len(next(iter(arrays.values())))
                    for key, value in arrays.items():
                        joined.setdefault(key, []).append(value)
            except Exception as exc:  # noqa: BLE001 - a damaged part file: no such feature, the stream stands
                logger.warning("stream %s: feature file %s not joined (%s: %s)", self.spec.key, name,
                               type(exc).__name__, exc)
                continue
            if any(len(parts) != len(self._part_features) for parts in joined.values()):
                continue  # (a part without one of its arrays: not joined)
            out = {key: np.concatenate(parts) for key, parts in joined.items()}
            if any(len(v) != len(self._times) for v in out.values()):
                continue  # (not a row per frame)
            (self.folder / FEATURES).mkdir(exist_ok=True)
            np.savez(self.folder / FEATURES / name, **out, **{PART_STARTS: np.asarray(starts, dtype=np.int64)})

    def _add_piece(self, path: Path, first: int, count: int) -> None:
        """Record ``count`` frames from ``first`` on in ``path``, joined to the last run when it continues it."""
        if count <= 0:
            return
        name = os.path.relpath(path, self.folder)
        last = self._pieces[-1] if self._pieces else None
        if last is not None and last[0] == name and last[1] + last[2] == first:
            last[2] += count
        else:
            self._pieces.append([name, first, count])

    def abort(self) -> None:
        """Close the frame file after a failed decode, writing no times or meta: not a stream."""
        if self._frames is not None:
            self._frames.close()

    def close(self) -> "FrameStream":
        if self._frames is not None:
            self._frames.close()
        elif self._pieces is None:
            (self.folder / "frames.u8").touch()  # a stream without frames still has its (empty) file
        np.save(self.folder / "times.npy", np.frombuffer(self._times, dtype=np.float64) if self._times
                else np.zeros(0, dtype=np.float64))
        meta = {"spec": self.spec.key, "fps": self.spec.fps, "width": self.width,
                "height": self.height, "pix_fmt": self.spec.pix_fmt, "count": len(self._times)}
        if self._pieces is not None:
            meta["pieces"] = self._pieces
        self._join_features()
        (self.folder / "meta.json").write_text(json.dumps(meta))
        return FrameStream(self.folder, self.spec)


class FrameStream:
    """A read-only sequence of (time, frame) read lazily from the run cache."""

    def __init__(self, folder: Path, spec: FrameSpec):
        self.folder = Path(folder)
        self.spec = spec
        meta = json.loads((self.folder / "meta.json").read_text())
        self.width: int = meta["width"]
        self.height: int = meta["height"]
        self.times: np.ndarray = np.load(self.folder / "times.npy")
        self._pieces: list | None = meta.get("pieces")  # set when the frames live in other files
        self._disk: DiskArray | None = None

    def __len__(self) -> int:
        return len(self.times)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.spec.channels == 1 else (self.height, self.width, 3)

    @property
    def frames(self) -> DiskArray:
        """All frames, shape (N, H, W[, 3]) uint8, read from disk on indexing (``frames[i]``,
        ``frames[a:b]``, ``frames[index_array]``); memory stays bounded whatever the length."""
        if self._disk is None:
            pieces = self.pieces() if self._pieces is not None else None
            self._disk = DiskArray(self.folder / "frames.u8", np.uint8, self.frame_shape, len(self), pieces=pieces)
        return self._disk

    def pieces(self) -> list[tuple[Path, int, int]]:
        """Where the frames are, in order: ``(file, first frame in it, frames)`` runs."""
        if self._pieces is None:
            return [(self.folder / "frames.u8", 0, len(self))]
        return [(self.folder / name, int(first), int(count)) for name, first, count in self._pieces]

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        for times, block in self.batches(64):
            for t, frame in zip(times, block):
                yield float(t), frame

    def batches(self, size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(times, frames) in blocks of ``size``: vectorised work with bounded memory."""
        frames = self.frames
        for i in range(0, len(self), size):
            yield self.times[i:i + size], frames[i:i + size]

    def index_at(self, t: float) -> int:
        """Index of the last frame presented at or before ``t`` seconds (0 if none)."""
        return max(0, int(np.searchsorted(self.times, t, side="right")) - 1)

    def features(self, function: str, kwargs: dict[str, Any] | None = None) -> dict[str, np.ndarray] | None:
        """The per-frame features ``function(frames, **kwargs)`` that the decode computed for this stream
        (``Analyzer.stream_features``), each array a row per frame, with ``PART_STARTS`` (the rows where a
        segment of the decode began; ``[0]`` for a stream computed in one piece); None when there are none
        (a decode in one pass, a stream from an older run) or they do not fit the stream: compute them."""
        path = feature_file(self.folder, function, kwargs)
        try:
            with np.load(path) as stored:
                out = {k: stored[k] for k in stored.files}
        except (OSError, ValueError):
            return None
        if any(len(v) != len(self) for k, v in out.items() if k != PART_STARTS):
            return None
        out.setdefault(PART_STARTS, np.zeros(1, dtype=np.int64))
        return out

    def store_features(self, function: str, kwargs: dict[str, Any] | None, arrays: dict[str, np.ndarray]) -> Path:
        """Keep ``arrays`` (a row per frame each) as this stream's features ``function(frames, **kwargs)``."""
        bad = [k for k, v in arrays.items() if len(v) != len(self) or k == PART_STARTS]
        if bad:
            raise ValueError(f"stream {self.spec.key}: features {bad} of {function} need a row per frame "
                             f"({len(self)}), under names other than {PART_STARTS}")
        path = feature_file(self.folder, function, kwargs)
        path.parent.mkdir(exist_ok=True)
        np.savez(path, **arrays)
        return path


class AudioWriter:
    """Appends 16 kHz mono float32 samples to the run cache (used by the decoder)."""

    def __init__(self, path: Path, start_time: float = 0.0):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO = open(path, "wb")
        self.start_time = start_time
        self.count = 0

    def write(self, samples: np.ndarray) -> None:
        data = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        self._fh.write(data.tobytes())
        self.count += data.size

    def close(self) -> "AudioTrack":
        self._fh.close()
        (self.path.with_suffix(".json")).write_text(json.dumps({"start_time": self.start_time,
                                                                 "count": self.count}))
        return AudioTrack(self.path)


class AudioTrack:
    """The analyzed audio stream (``VideoMeta.audio_stream``) as 16 kHz mono float32, read lazily
    from the run cache.

    ``start_time`` is the presentation time (seconds) of the first sample.
    """

    sample_rate = AUDIO_SAMPLE_RATE

    def __init__(self, path: Path):
        self.path = Path(path)
        meta = json.loads(self.path.with_suffix(".json").read_text())
        self.start_time: float = meta["start_time"]
        self.count: int = meta["count"]
        self._disk: DiskArray | None = None

    @property
    def duration(self) -> float:
        return self.count / self.sample_rate

    @property
    def samples(self) -> DiskArray:
        """All samples (float32, mono, 16 kHz), read from disk on indexing (``samples[a:b]``)."""
        if self._disk is None:
            self._disk = DiskArray(self.path, np.float32, (), self.count)
        return self._disk

    def chunks(self, seconds: float = 60.0, overlap: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
        """(start time in seconds, samples) blocks of ``seconds`` (+``overlap``) for bounded memory."""
        step = int(seconds * self.sample_rate)
        extra = int(overlap * self.sample_rate)
        data = self.samples
        for i in range(0, self.count, step):
            yield self.start_time + i / self.sample_rate, data[i:i + step + extra]
