"""Training data for ``framework finetune``: reading, checking, splitting, and the frames of each sample.

Two layouts are read (see docs/finetuning.md):

- **JSONL**, one sample a line: ``{"video": "clips/a.mp4", "start": 12.0, "end": 20.0,
  "prompt": "...", "caption": "..."}``; ``start``/``end`` (seconds) and ``prompt`` are
  optional; ``video`` is relative to the JSONL file's folder (or absolute).
- **ShareGPT4Video** (the dataset seed 002 fine-tuned on), ``.jsonl`` or a ``.json`` list of rows
  ``{"video_id", "video_path", "captions": [{"idx": "-1", "content": ...}, ...], "zip_folder", ...}``:
  the whole-video summary caption (``idx`` ``-1``, else the last one) of ``video_path``, found
  beside the file or inside a folder named after the row's ``zip_folder`` (the extracted zip).
  Rows in the ShareGPT conversation form (``{"video", "conversations": [{"from": "human",
  "value": "<video>\\n..."}, {"from": "gpt", "value": ...}]}``) are read too.

``check`` probes every video and reports every problem at once, each as ``file:line`` (a
missing video, an empty caption, a time range outside the video), before any model loads.

Frames: each video is decoded once by the framework's decoder into the stream the
``qwen2_vl_temporal`` analyzer would ask for (the family's fps and width), and each sample takes
its frames the way the analyzer does: a sample with a time range as a chunk of ``framework run``
(``pick_frames``: the frames inside it, thinned to the cap), a whole-video sample as ``framework
describe`` (``pick_spread``). The chosen frames are kept as one ``.npy`` per sample in the
output folder (``.frames/``), so a resumed run does not decode again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from framework.errors import InputError

from ..catalog import FAMILY_DEFAULTS
from ..chunks import pick_frames, pick_spread

logger = logging.getLogger(__name__)

TIME_SLACK_S = 0.05  # a range may end this much past the video's last frame (rounding of durations)
MAX_LISTED = 20      # problems listed in one error (the count of the rest follows)


@dataclass
class Sample:
    """One training example: a video (or a stretch of it), an optional instruction, the target caption."""

    video: Path
    caption: str
    source: str  # where it came from, ``file:line`` (for errors)
    start: float | None = None
    end: float | None = None
    prompt: str | None = None
    duration: float | None = None  # the video's, filled by ``check``

    @property
    def whole(self) -> bool:
        return self.start is None and self.end is None

    def span(self) -> tuple[float, float]:
        return (self.start or 0.0, self.end if self.end is not None else float(self.duration or 0.0))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["video"] = str(self.video)
        return d


@dataclass(frozen=True)
class Sampling:
    """How the frames are sampled: the analyzer's frame stream (fps, width) and its cap per chunk."""

    family: str
    fps: float
    frame_width: int
    max_frames: int

    def spec(self) -> Any:
        from framework import FrameSpec

        return FrameSpec(fps=self.fps, width=self.frame_width)

    def as_params(self) -> dict[str, Any]:
        """The ``qwen2_vl_temporal`` parameters that sample the same frames at inference."""
        return {"fps": self.fps, "frame_width": self.frame_width, "frames_per_chunk": self.max_frames}


def sampling_for(family: str, device: str, frames: int | None = None, fps: float | None = None,
                 frame_width: int | None = None) -> Sampling:
    """The analyzer's defaults for ``family`` on ``device`` (its cap per chunk is lower on a CPU)."""
    d = FAMILY_DEFAULTS[family]
    cap = frames or (d.cpu_max_frames if device == "cpu" else d.max_frames)
    return Sampling(family, fps or d.fps, frame_width or d.frame_width, cap)


# --- reading ---------------------------------------------------------------------------------------
def _sharegpt4video(row: dict[str, Any], root: Path) -> tuple[Path, str | None, str | None]:
    """(video path, caption, prompt) of a ShareGPT4Video row."""
    rel = str(row.get("video_path") or row.get("video_id") or "")
    captions = [c for c in row.get("captions") or [] if isinstance(c, dict)]
    summary = [c for c in captions if str(c.get("idx")) == "-1"] or captions[-1:]
    caption = str(summary[0].get("content") or "") if summary else None
    path = root / rel
    zip_folder = str(row.get("zip_folder") or "")
    if not path.exists() and zip_folder:
        stem = zip_folder[:-4] if zip_folder.endswith(".zip") else zip_folder
        for candidate in (root / stem / rel, root / stem / Path(rel).name):
            if candidate.exists():
                path = candidate
                break
    return path, caption, None


def _conversation(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(prompt, caption) of a ShareGPT conversation row: the first human turn and the answer after it."""
    prompt = caption = None
    for turn in row.get("conversations") or []:
        who, value = str(turn.get("from", "")).lower(), str(turn.get("value", ""))
        if who in ("human", "user") and prompt is None:
            prompt = value.replace("<video>", "").replace("<image>", "").strip() or None
        elif who in ("gpt", "assistant") and caption is None:
            caption = value
    return prompt, caption


def _number(row: dict[str, Any], key: str, where: str, errors: list[str]) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append(f"{where}: '{key}' must be a number of seconds, got {value!r}")
        return None
    return float(value)


def _row_to_sample(row: Any, root: Path, where: str, errors: list[str]) -> Sample | None:
    if not isinstance(row, dict):
        errors.append(f"{where}: expected a JSON object, got {type(row).__name__}")
        return None
    prompt = row.get("prompt")
    if "captions" in row and ("video_path" in row or "video_id" in row):
        video, caption, _ = _sharegpt4video(row, root)
    elif "conversations" in row:
        prompt, caption = _conversation(row)
        video = root / str(row.get("video") or "")
        if not row.get("video"):
            errors.append(f"{where}: no 'video' key")
            return None
    else:
        if not row.get("video"):
            errors.append(f"{where}: no 'video' key (expected {{video, start?, end?, prompt?, caption}})")
            return None
        video = Path(str(row["video"]))
        video = video if video.is_absolute() else root / video
        caption = row.get("caption")
    if caption is None or not isinstance(caption, str) or not caption.strip():
        errors.append(f"{where}: empty caption" if caption is not None else f"{where}: no 'caption'")
        return None
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        errors.append(f"{where}: 'prompt' must be a non-empty string when given")
        return None
    start, end = _number(row, "start", where, errors), _number(row, "end", where, errors)
    return Sample(video=video, caption=caption.strip(), source=where, start=start, end=end,
                  prompt=prompt.strip() if prompt else None)


def read_samples(path: Path, errors: list[str] | None = None) -> list[Sample]:
    """The samples of a JSONL file or a JSON list; malformed lines are reported together (``InputError``),
    or added to ``errors`` when it is given."""
    path = Path(path)
    collect = errors is not None
    if not path.is_file():
        raise InputError(f"{path}: no such data file (a JSONL of {{video, start?, end?, prompt?, caption}} lines "
                         "or a ShareGPT4Video .json/.jsonl)")
    root = path.resolve().parent
    errors = errors if errors is not None else []
    samples: list[Sample] = []
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{path}:{getattr(exc, 'lineno', '?')}: not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            data = data.get("data") or data.get("samples") or [data]
        rows = [(f"{path}: entry {i + 1}", row) for i, row in enumerate(data)]
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rows.append((f"{path}:{n}", json.loads(line)))
            except ValueError as exc:
                errors.append(f"{path}:{n}: not valid JSON ({exc})")
    for where, row in rows:
        sample = _row_to_sample(row, root, where, errors)
        if sample is not None:
            samples.append(sample)
    if not rows and not errors:
        errors.append(f"{path}: no samples")
    if not collect:
        _raise(errors, path)
    return samples


def _raise(errors: list[str], path: Path) -> None:
    if not errors:
        return

    def where(e: str) -> int:  # in file order: ``file:LINE:`` or ``file: entry N:``
        m = re.search(r"(?::|entry )(\d+):", e)
        return int(m.group(1)) if m else 0

    errors = sorted(errors, key=where)
    shown = errors[:MAX_LISTED]
    more = f"\n  ... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
    raise InputError(f"{path}: {len(errors)} problem{'s' if len(errors) != 1 else ''} in the training data "
                     "(nothing was trained):\n  " + "\n  ".join(shown) + more)


def check(samples: list[Sample], path: Path, errors: list[str] | None = None) -> None:
    """Probe every video once; report missing or unreadable videos and ranges outside them (``InputError``),
    with the problems already in ``errors``."""
    from framework.media import probe

    errors = errors if errors is not None else []
    durations: dict[Path, float | str] = {}
    for s in samples:
        if s.video not in durations:
            if not s.video.is_file():
                durations[s.video] = "missing"
            else:
                try:
                    meta = probe(s.video, hash_content=False)  # the duration; the hash is not needed
                    durations[s.video] = (float(meta.duration or 0.0) if meta.has_video
                                          else "has no video stream")
                except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
                    durations[s.video] = f"cannot be read ({exc})"
        d = durations[s.video]
        if d == "missing":
            errors.append(f"{s.source}: video {s.video} not found")
            continue
        if isinstance(d, str):
            errors.append(f"{s.source}: video {s.video} {d}")
            continue
        s.duration = d
        start, end = s.start, s.end
        if start is not None and start < 0:
            errors.append(f"{s.source}: start {start:g} s is before the start of the video")
        elif start is not None and start >= d:
            errors.append(f"{s.source}: start {start:g} s is outside the video ({s.video.name} lasts {d:.2f} s)")
        elif end is not None and end > d + TIME_SLACK_S:
            errors.append(f"{s.source}: end {end:g} s is outside the video ({s.video.name} lasts {d:.2f} s)")
        elif end is not None and end <= (start or 0.0):
            errors.append(f"{s.source}: end {end:g} s is not after start {start or 0.0:g} s")
    _raise(errors, path)


def load(path: Path) -> list[Sample]:
    """Read and check the data (``read_samples`` + ``check``): every problem in one ``InputError``."""
    errors: list[str] = []
    samples = read_samples(path, errors)
    check(samples, path, errors)
    return samples


def split(samples: list[Sample], val_fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples, split by video (a validation video is never trained on);
    at least one video on each side when there are two or more videos and ``val_fraction > 0``."""
    videos = sorted({str(s.video) for s in samples})
    if val_fraction <= 0 or len(videos) < 2:
        return list(samples), []
    rng = random.Random(seed)
    rng.shuffle(videos)
    n_val = min(len(videos) - 1, max(1, round(len(videos) * val_fraction)))
    held = set(videos[:n_val])
    return [s for s in samples if str(s.video) not in held], [s for s in samples if str(s.video) in held]


# --- frames --------------------------------------------------------------------------------------
@dataclass
class Framed:
    """A sample with its frames on disk (``frames_file``: (T, H, W, 3) uint8) and their times."""

    sample: Sample
    frames_file: Path
    times: list[float] = field(default_factory=list)

    def frames(self) -> Any:
        import numpy as np

        return np.load(self.frames_file)


def data_digest(samples: Iterable[Sample], sampling: Sampling) -> str:
    """A short hash of the samples and the sampling (a resumed run checks it did not change)."""
    payload = json.dumps([[str(s.video), s.start, s.end, s.prompt, s.caption] for s in samples] + [asdict(sampling)])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def extract_frames(samples: list[Sample], sampling: Sampling, folder: Path,
                   progress: Callable[[int, int], None] | None = None) -> list[Framed]:
    """Each sample's frames as the analyzer samples them, decoded once per video (see the module docstring)."""
    import numpy as np

    from framework.media import decode, probe

    folder.mkdir(parents=True, exist_ok=True)
    spec = sampling.spec()
    by_video: dict[Path, list[int]] = {}
    for i, s in enumerate(samples):
        by_video.setdefault(s.video, []).append(i)
    out: dict[int, Framed] = {}
    done = 0
    for video, indices in by_video.items():
        key = hashlib.sha256(f"{video}|{spec.key}|{sampling.max_frames}".encode()).hexdigest()[:12]
        names = {i: f"{samples[i].start}-{samples[i].end}" for i in indices}  # the frames depend on the range only
        files = {i: folder / f"{key}-{hashlib.sha256(names[i].encode()).hexdigest()[:8]}.npy" for i in indices}
        index_file = folder / f"{key}.json"
        saved = json.loads(index_file.read_text()) if index_file.is_file() else {}
        if all(names[i] in saved and files[i].is_file() for i in indices):
            for i in indices:
                out[i] = Framed(samples[i], files[i], saved[names[i]])
        else:
            with tempfile.TemporaryDirectory(prefix="finetune-decode-", dir=folder) as tmp:
                meta = probe(video, hash_content=False)
                stream = decode(video, meta, [spec], False, Path(tmp)).streams[spec]
                for i in indices:
                    s = samples[i]
                    start, end = s.span()
                    idx = (pick_spread(stream.times, start, end, sampling.max_frames) if s.whole
                           else pick_frames(stream.times, start, end, sampling.max_frames))
                    if not idx:
                        raise InputError(f"{s.source}: no frame of {video} lies in {start:g}-{end:g} s")
                    np.save(files[i], np.ascontiguousarray(stream.frames[idx]))
                    saved[names[i]] = [round(float(stream.times[j]), 3) for j in idx]
                    out[i] = Framed(s, files[i], saved[names[i]])
                del stream
            index_file.write_text(json.dumps(saved))
        done += len(indices)
        if progress is not None:
            progress(done, len(samples))
    return [out[i] for i in range(len(samples))]


__all__ = ["Framed", "Sample", "Sampling", "check", "data_digest", "extract_frames", "load", "read_samples",
           "sampling_for", "split"]
