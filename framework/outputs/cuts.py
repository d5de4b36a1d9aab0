"""``cuts.csv`` (one row per shot) and the timecode helpers ``cuts.edl`` shares.

Frame numbers are the decoded-frame indices the shot events carry (``data["first_frame"]`` /
``data["last_frame"]``), never a time multiplied by an average rate, which is wrong on
variable-frame-rate video. A shot track that gives no indices gets frames computed from its
times on constant-rate video and none (empty CSV cells) on variable-rate video.

Timecode counts those frames at the stream's declared rate (``video.fps_rational`` when known,
else ``video.fps``), written as OpenTimelineIO writes it in ``cuts.edl``: drop-frame
(``HH:MM:SS;FF``) at 29.97 and 59.94, so it keeps to the clock; non-drop-frame elsewhere. At
23.976 non-drop timecode counts 24 frames per "second" and runs 0.1 % behind the clock (3.6 s per
hour); frame numbers stay exact. On variable-rate video the timecode of a frame is where an editor
conforming the file to that constant rate finds it. At rates without SMPTE timecode (15, 20 fps...)
the CSV counts frames at the nearest whole rate (``frames_to_timecode``).

``cuts_edl`` writes an EDL of a shot list alone; ``cuts.edl`` itself is written by the ``edl``
exporter (``framework.outputs.editorial``) through OpenTimelineIO's CMX 3600 adapter.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from fractions import Fraction
from pathlib import Path

from ..timeline import Timeline, atomic_write_text
from .base import ExportContext, Exporter, Shot, exact_rate, rate_fraction

logger = logging.getLogger(__name__)

REEL = "AX"
CSV_COLUMNS = ("index", "start", "end", "duration", "start_frame", "end_frame", "transition_in",
               "start_timecode", "end_timecode")


def timecode_base(fps: float) -> int:
    """Frames per timecode second: the integer nearest ``fps`` (30 for 29.97, 24 for 23.976)."""
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"cannot make timecode at {fps!r} fps")
    return max(1, int(round(fps)))


def seconds_to_frame(t: float, fps: float) -> int:
    """The frame shown at ``t`` seconds, rounded to the nearest frame boundary."""
    return int(math.floor(t * fps + 0.5 + 1e-9))


def frames_to_timecode(frames: int, base: int) -> str:
    """``HH:MM:SS:FF`` non-drop-frame timecode of a frame count at ``base`` frames per second."""
    if frames < 0:
        raise ValueError(f"negative frame count {frames}")
    total_s, ff = divmod(frames, base)
    hh, rem = divmod(total_s, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def seconds_to_timecode(t: float, fps: float) -> str:
    return frames_to_timecode(seconds_to_frame(t, fps), timecode_base(fps))


def shot_frames(shot: Shot, fps: float | None, variable_frame_rate: bool = False) -> tuple[int, int] | None:
    """``(first, end)`` frame numbers of a shot, ``end`` exclusive: the indices its event carries;
    else, on constant-rate video, its times at ``fps``; else ``None``."""
    if shot.first_frame is not None and shot.end_frame is not None:
        return shot.first_frame, shot.end_frame
    if fps and not variable_frame_rate:
        return seconds_to_frame(shot.start, fps), seconds_to_frame(shot.end, fps)
    return None


def cuts_csv(shots: list[Shot], fps: float | None, variable_frame_rate: bool = False,
             rate: Fraction | None = None) -> str:
    """One row per shot; ``end`` and ``end_frame`` are exclusive (where the next shot starts).

    :param fps: the rate timecode counts at (the declared rate); frames come from the shots.
    :param rate: the same rate as an exact fraction, when known (``30000/1001``); timecode is then
        written as in ``cuts.edl`` (drop-frame at 29.97 and 59.94).
    """
    from .editorial import timecode

    if fps and rate is None:
        rate = rate_fraction(fps)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in shots:
        span = shot_frames(s, fps, variable_frame_rate)
        if span is not None:
            frames: list[int | str] = list(span)
            tcs = [timecode(f, rate) for f in span] if rate else ["", ""]
        else:
            frames, tcs = ["", ""], ["", ""]
        writer.writerow([s.index, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}", *frames,
                         s.transition_in, *tcs])
    return buf.getvalue()


def cuts_edl(shots: list[Shot], fps: float, title: str, clip_name: str,
             variable_frame_rate: bool = False) -> str:
    """A CMX 3600 EDL of ``shots`` alone (no markers), written by OpenTimelineIO's adapter as the
    ``edl`` exporter writes ``cuts.edl`` (``framework.outputs.editorial``)."""
    from .editorial import EditPlan, PlannedClip, cmx3600

    rate = rate_fraction(fps)
    clips = []
    for s in shots:
        first, end = shot_frames(s, fps)
        if end > first:
            clips.append(PlannedClip(first, end, f"Shot {s.index}", s))
        else:
            logger.info("cuts.edl: shot %d (%.3f-%.3f s) is shorter than a frame; left out", s.index, s.start, s.end)
    total = max([c.end for c in clips] + [1])
    plan = EditPlan(rate=rate, title=title, file_name=clip_name, url=clip_name, total=total, clips=tuple(clips),
                    marks=(), has_shots=bool(clips), variable_frame_rate=variable_frame_rate)
    return cmx3600(plan)


def edl_ascii(text: str) -> str:
    """EDL lines are plain ASCII: no newlines, nothing outside printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "_" for c in str(text))


class CutsExporter(Exporter):
    """``cuts.csv``: the shot list for spreadsheets (``cuts.edl`` is the ``edl`` exporter's)."""

    name = "cuts"
    filenames = ("cuts.csv",)
    description = "the shot list as CSV"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        shots = context.shots()
        if not shots:
            return self.nothing_to_write(run_dir, "no shot list (no ok track providing 'shots' with 'shot' events)")
        rate = exact_rate(timeline)
        csv_text = cuts_csv(shots, context.frame_rate, timeline.video.variable_frame_rate, rate)
        return [atomic_write_text(run_dir / "cuts.csv", csv_text)]
