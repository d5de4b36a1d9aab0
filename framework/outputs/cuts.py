"""``cuts.csv`` (one row per shot) and ``cuts.edl`` (a CMX3600 edit decision list of the shots).

Frame numbers are the decoded-frame indices the shot events carry (``data["first_frame"]`` /
``data["last_frame"]``), never a time multiplied by an average rate, which is wrong on
variable-frame-rate video. A shot track that gives no indices gets frames computed from its
times on constant-rate video and none (empty CSV cells) on variable-rate video.

Timecode counts those frames, non-drop-frame (NDF), at the integer rate nearest the stream's
declared rate (``video.fps_rational`` when known, else ``video.fps``). For NTSC rates (29.97,
23.976, 59.94) NDF timecode counts 30/24/60 frames per "second", so it runs 0.1 % behind the
clock (3.6 s per hour); frame numbers stay exact, and the EDL says so in a comment. On
variable-rate video the timecode of a frame is where an editor conforming the file to that
constant rate finds it; the clock times stay in each event's comment.
Every EDL event is a cut from the one source reel (``AX``); how a shot began (fade, dissolve) is
noted in a comment, since a dissolve between two parts of the same source is not what an editor
importing the list wants.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path

from ..timeline import Timeline, atomic_write_text
from .base import ExportContext, Exporter, Shot

logger = logging.getLogger(__name__)

REEL = "AX"
CSV_COLUMNS = ("index", "start", "end", "duration", "start_frame", "end_frame", "transition_in",
               "start_timecode", "end_timecode")


def timecode_base(fps: float) -> int:
    """Frames per timecode second: the integer nearest ``fps`` (30 for 29.97, 24 for 23.976)."""
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"cannot make timecode at {fps!r} fps")
    return max(1, int(round(fps)))


def is_ntsc_rate(fps: float) -> bool:
    """True when ``fps`` is not a whole number (29.97, 23.976, 59.94...): NDF timecode drifts."""
    return abs(fps - round(fps)) > 1e-3


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


def cuts_csv(shots: list[Shot], fps: float | None, variable_frame_rate: bool = False) -> str:
    """One row per shot; ``end`` and ``end_frame`` are exclusive (where the next shot starts).

    :param fps: the rate timecode counts at (the declared rate); frames come from the shots.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in shots:
        span = shot_frames(s, fps, variable_frame_rate)
        if span is not None:
            frames: list[int | str] = list(span)
            tcs = [frames_to_timecode(f, timecode_base(fps)) for f in span] if fps else ["", ""]
        else:
            frames, tcs = ["", ""], ["", ""]
        writer.writerow([s.index, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}", *frames,
                         s.transition_in, *tcs])
    return buf.getvalue()


def cuts_edl(shots: list[Shot], fps: float, title: str, clip_name: str,
             variable_frame_rate: bool = False) -> str:
    """A CMX3600 EDL: one cut event per shot, source and record timecode counting the shot's
    decoded frames at ``fps`` (the declared rate)."""
    base = timecode_base(fps)
    ntsc = is_ntsc_rate(fps)
    lines = [f"TITLE: {_edl_text(title)[:70]}", "FCM: NON-DROP FRAME"]
    if ntsc and not variable_frame_rate:
        drift = 1.0 - fps / base  # timecode seconds lost per clock second
        lines.append(f"* {fps:.3f} FPS VIDEO: NON-DROP TIMECODE COUNTS {base} FRAMES PER SECOND AND RUNS "
                     f"{abs(drift) * 100:.1f}% {'BEHIND' if drift > 0 else 'AHEAD OF'} THE CLOCK "
                     f"({abs(drift) * 3600:.1f} S PER HOUR); FRAME NUMBERS ARE EXACT")
    if variable_frame_rate:
        if all(s.first_frame is not None for s in shots):
            lines.append(f"* VARIABLE FRAME RATE VIDEO: TIMECODES COUNT DECODED FRAMES AT {fps:.3f} FPS, "
                         "SO THEY DRIFT FROM THE CLOCK; EACH SHOT'S CLOCK TIME IS IN ITS COMMENT")
        elif any(s.first_frame is not None for s in shots):
            lines.append(f"* VARIABLE FRAME RATE VIDEO: THE SHOT TRACK GAVE FRAME NUMBERS FOR SOME SHOTS ONLY; "
                         f"THE OTHERS' FRAMES ASSUME A CONSTANT {fps:.3f} FPS")
        else:
            lines.append(f"* VARIABLE FRAME RATE VIDEO: THE SHOT TRACK GAVE NO FRAME NUMBERS; FRAMES ASSUME "
                         f"A CONSTANT {fps:.3f} FPS")
    lines.append("")
    number = 0
    for s in shots:
        f0, f1 = shot_frames(s, fps)  # never None: fps is set and times stand in for missing indices
        if f1 <= f0:
            logger.info("cuts.edl: shot %d (%.3f-%.3f s) is shorter than a frame; left out", s.index,
                        s.start, s.end)
            continue
        number += 1
        tc_in, tc_out = frames_to_timecode(f0, base), frames_to_timecode(f1, base)
        lines.append(f"{number:03d}  {REEL:<8} {'V':<5} {'C':<4} {'':>3} {tc_in} {tc_out} {tc_in} {tc_out}")
        lines.append(f"* FROM CLIP NAME: {_edl_text(clip_name)}")
        transition = _edl_text(s.transition_in).upper()
        lines.append(f"* SHOT {s.index}: {s.start:.3f}-{s.end:.3f} S, TRANSITION IN: {transition}")
        lines.append("")
    if number > 999:
        logger.warning("cuts.edl has %d events; strict CMX3600 readers stop at 999", number)
    return "\n".join(lines)


def _edl_text(text: str) -> str:
    """EDL lines are plain ASCII: no newlines, nothing outside printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "_" for c in str(text))


class CutsExporter(Exporter):
    """``cuts.csv`` and ``cuts.edl``: the shot list for spreadsheets and editing software."""

    name = "cuts"
    filenames = ("cuts.csv", "cuts.edl")
    description = "the shot list as CSV and as a CMX3600 EDL"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        shots = context.shots()
        if not shots:
            return self.nothing_to_write(run_dir, "no shot list (no ok track providing 'shots' with 'shot' events)")
        fps = context.frame_rate
        vfr = timeline.video.variable_frame_rate
        written = [atomic_write_text(run_dir / "cuts.csv", cuts_csv(shots, fps, vfr))]
        if fps:
            clip = Path(timeline.video.path).name
            edl = cuts_edl(shots, fps, Path(clip).stem, clip, vfr)
            written.append(atomic_write_text(run_dir / "cuts.edl", edl))
        else:
            logger.info("the video has no frame rate: cuts.edl not written")
            (run_dir / "cuts.edl").unlink(missing_ok=True)
        return written
