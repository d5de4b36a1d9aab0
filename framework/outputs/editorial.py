"""Timelines for editing software, written by OpenTimelineIO and its adapters.

==============  ======================  =================================================
exporter        file                    written by
==============  ======================  =================================================
``otio``        ``timeline.otio``       OpenTimelineIO's own JSON (``otio_json``)
``fcpxml``      ``timeline.fcpxml``     ``otio-fcpx-xml-adapter`` (Final Cut Pro X)
``fcp7``        ``timeline.fcp7.xml``   ``otio-fcp-adapter`` (FCP 7 XML: Premiere, Resolve)
``edl``         ``cuts.edl``            ``otio-cmx3600-adapter`` (CMX 3600)
==============  ======================  =================================================

One video track holds the shots of the track providing ``"shots"``: each shot is a clip of the
analyzed file whose source range is the shot's decoded frames at the stream's declared rate
(``video.fps_rational``), placed at the same frames on the timeline (a gap where the shot list
has a hole), so record time equals source time. Without a shot list the track holds one clip of
the whole video, so the markers still reach the editor (``cuts.edl`` is then not written).
When the video has sound, ``.otio`` and FCP 7 XML get an audio track with the same clips; FCPXML
and the EDL hold the picture only.

Markers carry what the analyzers found: the summary's chapters and key moments, and every event
of an ``ok`` track whose ``data["text"]`` holds text (transcript lines, descriptions, on-screen
text, object labels...); word events (label ``word``) are left out, their segment carries them,
and so are the events of a track providing ``"summary"`` (its summary's moments are markers already).
A marker sits on the shot where it starts, at its source frame, and lasts until its end or the
end of that shot, whichever comes first (an instant lasts one frame, as a marker set in an editor
does); its metadata keeps the exact times in seconds, its comment the whole text. A marker that
starts in a gap of the shot list sits on the timeline itself (``.otio`` and FCP 7 XML keep those;
FCPXML and the EDL have no place for them).

What the adapters cannot do is done around them, never instead of them:

- FCPXML: the adapter knows frame durations for integer rates only; for 23.976, 29.97 and 59.94
  (and any other rate) the ``<format>`` element gets its exact ``frameDuration``, and every format
  gets the frame size (``width``/``height``) and FCP's format name where there is one. The adapter
  would name the format by running ffprobe on the video; it is not let run (``_fcpx_without_ffprobe``).
- FCPXML and FCP 7 XML: the adapters write text as it is; characters XML 1.0 cannot hold (control
  characters such as ``\\x01`` in an event's text) are removed first (``xml_safe``).
- EDL: the adapter writes no ``FCM`` line; it is added after ``TITLE`` (``DROP FRAME`` at 29.97 and
  59.94, whose timecode the adapter writes as drop-frame ``HH:MM:SS;FF``). Notes on the rate are
  comments of the first event (CMX 3600 readers, the adapter's own among them, refuse comments
  before it).
- SMPTE timecode exists only at SMPTE rates (23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60). At
  any other rate (10, 15, 20, 120 fps...) the EDL and FCP 7 XML count frames at an SMPTE rate
  (``timecode_rate``: a multiple of the video's rate when there is one, so the times stay exact)
  and the EDL says so; ``.otio`` and FCPXML keep the video's own rate.
"""
from __future__ import annotations

import bisect
import logging
import re
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..timeline import Timeline, Track, atomic_write_text
from .base import ExportContext, Exporter, Shot, exact_rate, summary_track_of
from .cuts import REEL, edl_ascii, seconds_to_frame, shot_frames

if TYPE_CHECKING:
    import opentimelineio as otio

    from ..summary import Summary

logger = logging.getLogger(__name__)

WORD_LABEL = "word"
MAX_NAME = 100  # characters of a marker's name (its comment keeps the whole text)
EDL_MAX_NAME = 80
COLORS = {"chapter": "BLUE", "key_moment": "YELLOW", "transcript": "CYAN", "descriptions": "MAGENTA"}
DEFAULT_COLOR = "WHITE"  # colours Avid locators know too; RED and GREEN mean to-do items in FCP X
SMPTE_BASES = (24, 25, 30, 48, 50, 60)
FCP_SIZES = {(1280, 720): "720", (1920, 1080): "1080", (3840, 2160): "2160"}


# --- what goes on the timeline ------------------------------------------------------------------


def one_line(text: str, limit: int = MAX_NAME) -> str:
    """``text`` on one line, whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Mark:
    """One marker: a chapter or key moment of the summary, or an event with text.

    :ivar kind: ``chapter``, ``key_moment``, or the capability of the event's track
        (``transcript``, ``descriptions``, ...; ``event`` when the track declares none).
    """

    start: float
    end: float
    name: str
    text: str
    kind: str
    analyzer: str = ""
    label: str = ""

    @property
    def color(self) -> str:
        return COLORS.get(self.kind, DEFAULT_COLOR)


def _kind(track: Track) -> str:
    for capability in ("transcript", "descriptions"):
        if capability in track.provides:
            return capability
    return track.provides[0] if track.provides else "event"


def marks_of(timeline: Timeline, summary: Summary | None) -> list[Mark]:
    """Every marker of the run in time order: chapters, key moments, events with ``data["text"]``."""
    marks: list[Mark] = []
    if summary is not None:
        source = summary_track_of(timeline)
        who = source.analyzer if source else ""
        for ch in summary.chapters:
            marks.append(Mark(ch.start, ch.end, one_line(ch.title) or "Chapter", ch.summary.strip() or ch.title,
                              "chapter", who, "chapter"))
        for km in summary.key_moments:
            end = km.end if km.end is not None else km.time
            marks.append(Mark(km.time, end, one_line(km.text), km.text.strip(), "key_moment", who, "key_moment"))
    for track in timeline.tracks.values():
        if track.status != "ok" or "summary" in track.provides:  # its chapters and moments came above
            continue
        kind = _kind(track)
        for ev in track.events:
            text = ev.data.get("text")
            if not isinstance(text, str) or not text.strip() or ev.label == WORD_LABEL:
                continue
            speaker = ev.data.get("speaker")
            name = f"{speaker}: {text}" if speaker else text
            marks.append(Mark(ev.start, ev.end, one_line(name), text.strip(), kind, track.analyzer, ev.label))
    return sorted(marks, key=lambda m: (m.start, m.end))


@dataclass(frozen=True)
class PlannedClip:
    """A clip of the track: frames ``first`` (inclusive) to ``end`` (exclusive), source = record."""

    first: int
    end: int
    name: str
    shot: Shot | None = None


@dataclass(frozen=True)
class PlannedMark:
    mark: Mark
    first: int
    end: int  # exclusive, at least first + 1


@dataclass(frozen=True)
class EditPlan:
    """A run's shots and markers in frames at ``rate``: what every editorial export writes.

    ``title`` names the timeline (the video's file name without extension, as ``cuts.edl``'s
    ``TITLE`` always was); ``summary_title`` is kept in the timeline's metadata.
    """

    rate: Fraction
    title: str
    file_name: str
    url: str
    total: int  # frames of the whole video
    clips: tuple[PlannedClip, ...]
    marks: tuple[PlannedMark, ...]
    has_shots: bool
    variable_frame_rate: bool = False
    width: int | None = None
    height: int | None = None
    summary_title: str | None = None
    has_audio: bool = False


def media_url(timeline: Timeline, video: Path | None) -> str:
    """The video as a ``file://`` URL when reachable (else as recorded: absolute, or a relative
    reference the editor asks the user to relink)."""
    if video is not None:
        return Path(video).resolve().as_uri()
    recorded = Path(timeline.video.path)
    if recorded.is_absolute():
        return recorded.as_uri()
    from urllib.parse import quote

    return quote(recorded.as_posix())


def plan_edit(timeline: Timeline, context: ExportContext) -> EditPlan | None:
    """The plan of ``timeline`` (cached on ``context``); ``None`` without a video frame rate."""
    if "edit_plan" in context._cache:
        return context._cache["edit_plan"]
    plan = _plan(timeline, context)
    context._cache["edit_plan"] = plan
    return plan


def _plan(timeline: Timeline, context: ExportContext) -> EditPlan | None:
    video = timeline.video
    rate = exact_rate(timeline)
    if rate is None or not video.has_video:
        return None
    fps = float(rate)
    clips: list[PlannedClip] = []
    cursor = 0
    for shot in context.shots():
        first, end = shot_frames(shot, fps)  # its decoded frames, or its times at the rate
        first = max(first, cursor)  # a shot list that overlaps itself: the later shot is trimmed
        if end <= first:
            logger.info("shot %d (%.3f-%.3f s) covers no frame of its own; left out of the timeline exports",
                        shot.index, shot.start, shot.end)
            continue
        clips.append(PlannedClip(first, end, f"Shot {shot.index}", shot))
        cursor = end
    total = max(video.frame_count or 0, seconds_to_frame(context.duration, fps), cursor, 1)
    has_shots = bool(clips)
    file_name = Path(video.path).name
    if not clips:
        clips = [PlannedClip(0, total, file_name)]
    marks = []
    for mark in marks_of(timeline, context.summary):
        first = min(max(0, seconds_to_frame(mark.start, fps)), total - 1)
        end = max(first + 1, seconds_to_frame(mark.end, fps))
        marks.append(PlannedMark(mark, first, end))
    return EditPlan(rate=rate, title=one_line(Path(video.path).stem), file_name=file_name,
                    url=media_url(timeline, context.video_path), total=total, clips=tuple(clips),
                    marks=tuple(marks), has_shots=has_shots, variable_frame_rate=video.variable_frame_rate,
                    width=video.width, height=video.height,
                    summary_title=context.summary.title if context.summary else None,
                    has_audio=video.has_audio)


# --- the OpenTimelineIO timeline ------------------------------------------------------------------


def to_otio(plan: EditPlan, counting_rate: Fraction | None = None, audio: bool = False) -> "otio.schema.Timeline":
    """The plan as an OpenTimelineIO timeline; times are frames at ``plan.rate``, or at
    ``counting_rate``: on constant-rate video retimed to it (``round(frame * counting_rate /
    rate)``, exact when it is a multiple of the rate), on variable-rate video the same decoded
    frames counted at that rate (see ``timecode_rate``).

    With ``audio`` (and a video that has sound) an audio track repeats the shots' clips, without
    markers, so that an editor gets the sound with the picture."""
    import opentimelineio as otio

    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    counting = counting_rate or plan.rate
    r = float(counting)
    scale = 1 if plan.variable_frame_rate else counting / plan.rate

    def at(frame: int) -> int:
        return frame if scale == 1 else int(round(frame * scale))

    tl = otio.schema.Timeline(name=plan.title, global_start_time=RT(0, r))
    tl.metadata["framework"] = {"video": plan.url, "summary_title": plan.summary_title,
                                "frame_rate": str(plan.rate), "counted_at": str(counting),
                                "variable_frame_rate": plan.variable_frame_rate,
                                "width": plan.width, "height": plan.height}
    track = otio.schema.Track(name="Shots", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    available = TR(RT(0, r), RT(at(plan.total), r))
    placed: list[tuple[int, int, Any]] = []
    cursor = 0
    for c in plan.clips:
        first, end = at(c.first), at(c.end)
        if end <= first:
            continue
        if first > cursor:
            track.append(otio.schema.Gap(source_range=TR(RT(0, r), RT(first - cursor, r))))
        ref = otio.schema.ExternalReference(target_url=plan.url, available_range=available)
        ref.name = plan.file_name
        clip = otio.schema.Clip(name=c.name, media_reference=ref, source_range=TR(RT(first, r), RT(end - first, r)))
        if c.shot is not None:
            s = c.shot
            clip.metadata["framework"] = {"shot": s.index, "start": s.start, "end": s.end,
                                          "first_frame": c.first, "last_frame": c.end - 1,
                                          "transition_in": s.transition_in}
        track.append(clip)
        placed.append((first, end, clip))
        cursor = end
    starts = [p[0] for p in placed]
    for pm in plan.marks:
        first, end = at(pm.first), max(at(pm.first) + 1, at(pm.end))
        i = bisect.bisect_right(starts, first) - 1
        host = placed[i] if i >= 0 and first < placed[i][1] else None
        if host is not None:
            end = min(end, host[1])
        m = pm.mark
        marker = otio.schema.Marker(
            name=m.name, marked_range=TR(RT(first, r), RT(end - first, r)), color=m.color, comment=m.text,
            metadata={"framework": {"kind": m.kind, "analyzer": m.analyzer, "label": m.label,
                                    "start": m.start, "end": m.end}})
        (host[2].markers if host is not None else tl.tracks.markers).append(marker)
    if audio and plan.has_audio:
        sound = otio.schema.Track(name="Audio", kind=otio.schema.TrackKind.Audio)
        for item in track:
            twin = item.clone()
            if isinstance(twin, otio.schema.Clip):
                twin.markers.clear()
            sound.append(twin)
        tl.tracks.append(sound)
    return tl


def otio_json(plan: EditPlan) -> str:
    import opentimelineio as otio

    return otio.adapters.write_to_string(to_otio(plan, audio=True), "otio_json")


# characters XML 1.0 cannot hold, even as references: control characters but tab, newline and CR
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (``\\x01`` and the other control characters)."""
    return _NOT_XML.sub("", text)


def xml_safe(plan: EditPlan) -> EditPlan:
    """``plan`` with its texts cleaned by ``xml_text``: the FCP adapters write text as it is and then
    fail (``ExpatError``) reading their own output back to indent it."""
    marks = tuple(replace(pm, mark=replace(pm.mark, name=xml_text(pm.mark.name), text=xml_text(pm.mark.text),
                                           kind=xml_text(pm.mark.kind), analyzer=xml_text(pm.mark.analyzer),
                                           label=xml_text(pm.mark.label)))
                  for pm in plan.marks)
    clips = tuple(replace(c, name=xml_text(c.name)) for c in plan.clips)
    return replace(plan, title=xml_text(plan.title), file_name=xml_text(plan.file_name), clips=clips, marks=marks,
                   summary_title=xml_text(plan.summary_title) if plan.summary_title else plan.summary_title)


def fcp7_xml(plan: EditPlan) -> str:
    """FCP 7 XML by the adapter; it writes timecode, so frames are counted at an SMPTE rate
    (``timecode_rate``: the video's own rate whenever SMPTE timecode exists at it)."""
    import opentimelineio as otio

    plan = xml_safe(plan)
    counting = timecode_rate(plan.rate)
    tl = to_otio(plan, counting, audio=True)
    if is_drop_frame_rate(counting):  # the sequence's and the file's timecode display as drop-frame too
        tc = {"timecode": {"displayformat": "DF"}}
        tl.metadata["fcp_xml"] = tc
        for clip in tl.find_clips():  # the audio track's too
            clip.media_reference.metadata["fcp_xml"] = tc
    return otio.adapters.write_to_string(tl, "fcp_xml")


def fcpx_xml(plan: EditPlan) -> str:
    """FCPXML 1.8 by the adapter, its ``<format>`` completed (exact frame duration, frame size)."""
    plan = xml_safe(plan)
    text = _fcpx_without_ffprobe(to_otio(plan))
    return re.sub(r"<format\b([^>]*?)/>", lambda m: _complete_format(m.group(1), plan), text)


_FCPX_ADAPTER = threading.Lock()


def _fcpx_without_ffprobe(tl: "otio.schema.Timeline") -> str:
    """The ``fcpx_xml`` adapter's text, without running ffprobe: the adapter names each ``<format>``
    by probing the video in a child process (``format_name``), a name ``_complete_format`` replaces
    anyway. While it writes, its ``format_name`` names nothing (a lock keeps two writers apart)."""
    import opentimelineio as otio

    module = otio.adapters.from_name("fcpx_xml").module()  # loaded from its file, not as otio_fcpx_xml_adapter
    with _FCPX_ADAPTER:
        probe = getattr(module, "format_name", None)
        if probe is not None:
            module.format_name = lambda frame_rate, path: ""
        try:
            return otio.adapters.write_to_string(tl, "fcpx_xml")
        finally:
            if probe is not None:
                module.format_name = probe


def _complete_format(attrs: str, plan: EditPlan) -> str:
    values = dict(re.findall(r'(\w+)="([^"]*)"', attrs))
    if not values.get("frameDuration"):
        values["frameDuration"] = f"{plan.rate.denominator}/{plan.rate.numerator}s"
    if plan.width and plan.height:
        values.setdefault("width", str(plan.width))
        values.setdefault("height", str(plan.height))
    values.pop("name", None)  # the adapter's (from ffprobe, which it is not let run) is malformed at NTSC rates
    size = FCP_SIZES.get((plan.width or 0, plan.height or 0))
    fcp_rate = {Fraction(24000, 1001): "2398", Fraction(30000, 1001): "2997",
                Fraction(60000, 1001): "5994"}.get(plan.rate, str(plan.rate) if plan.rate.denominator == 1 else "")
    if size and fcp_rate:
        values["name"] = f"FFVideoFormat{size}p{fcp_rate}"
    order = ["id", "name", "frameDuration", "width", "height"]
    keys = [k for k in order if k in values] + [k for k in values if k not in order]
    from xml.sax.saxutils import quoteattr

    return "<format " + " ".join(f"{k}={quoteattr(values[k])}" for k in keys) + "/>"


# --- CMX 3600 ---------------------------------------------------------------------------------------


def is_smpte_rate(rate: Fraction) -> bool:
    """Whether SMPTE timecode (and so OpenTimelineIO's ``to_timecode``) exists at ``rate``."""
    from opentimelineio import opentime

    try:
        opentime.to_timecode(opentime.RationalTime(0, float(rate)), float(rate))
    except ValueError:
        return False
    return True


def is_drop_frame_rate(rate: Fraction) -> bool:
    """Whether OpenTimelineIO writes timecode at ``rate`` drop-frame (``HH:MM:SS;FF``): 29.97 and 59.94."""
    from opentimelineio import opentime

    return is_smpte_rate(rate) and ";" in opentime.to_timecode(opentime.RationalTime(0, float(rate)), float(rate))


def timecode_rate(rate: Fraction) -> Fraction:
    """``rate`` when SMPTE timecode exists at it; else the SMPTE rate frames are counted at in the
    EDL and FCP 7 XML: the smallest multiple of ``rate`` among 24/25/30/48/50/60 (then frame N of
    a constant-rate video is frame N * multiple there), else the smallest above it, else 60."""
    if is_smpte_rate(rate):
        return rate
    multiples = [b for b in SMPTE_BASES if (Fraction(b) / rate).denominator == 1]
    above = [b for b in SMPTE_BASES if b >= rate]
    return Fraction((multiples or above or [SMPTE_BASES[-1]])[0])


def timecode(frame: int, rate: Fraction) -> str:
    """SMPTE timecode of ``frame`` at ``rate`` as OpenTimelineIO writes it (drop-frame at 29.97
    and 59.94); at a rate without SMPTE timecode, frames counted at the nearest whole rate."""
    from opentimelineio import opentime

    if is_smpte_rate(rate):
        return opentime.to_timecode(opentime.RationalTime(frame, float(rate)), float(rate))
    from .cuts import frames_to_timecode, timecode_base

    return frames_to_timecode(frame, timecode_base(float(rate)))


def edl_header(plan: EditPlan, counting: Fraction) -> list[str]:
    """The ``FCM`` line (it goes after ``TITLE``) and the comment lines on the rate (they go
    under the first event)."""
    fps = float(plan.rate)
    lines = ["FCM: DROP FRAME" if is_drop_frame_rate(counting) else "FCM: NON-DROP FRAME"]
    if counting != plan.rate and plan.variable_frame_rate:
        lines.append(f"* VARIABLE FRAME RATE VIDEO OF {fps:.3f} FPS ON AVERAGE: SMPTE TIMECODE HAS NO SUCH RATE; "
                     f"DECODED FRAMES ARE COUNTED AT {float(counting):g} FPS")
    elif counting != plan.rate:
        ratio = counting / plan.rate
        frame = f"N*{ratio}" if ratio.denominator == 1 else f"ROUND(N*{float(ratio):.6g})"
        lines.append(f"* {fps:.3f} FPS VIDEO: CMX 3600 TIMECODE EXISTS ONLY AT SMPTE RATES; FRAMES ARE COUNTED "
                     f"AT {float(counting):g} FPS (FRAME N OF THE VIDEO IS FRAME {frame} HERE)")
    elif is_drop_frame_rate(counting):
        lines.append(f"* {fps:.3f} FPS VIDEO: DROP-FRAME TIMECODE (HH:MM:SS;FF) KEEPS TO THE CLOCK; "
                     "FRAME NUMBERS ARE EXACT")
    elif counting.denominator != 1:
        base = round(fps)
        drift = 1.0 - fps / base  # timecode seconds lost per clock second
        lines.append(f"* {fps:.3f} FPS VIDEO: NON-DROP TIMECODE COUNTS {base} FRAMES PER SECOND AND RUNS "
                     f"{abs(drift) * 100:.1f}% {'BEHIND' if drift > 0 else 'AHEAD OF'} THE CLOCK "
                     f"({abs(drift) * 3600:.1f} S PER HOUR); FRAME NUMBERS ARE EXACT")
    if plan.variable_frame_rate:
        shots = [c.shot for c in plan.clips if c.shot is not None]
        if shots and all(s.first_frame is not None for s in shots):
            lines.append(f"* VARIABLE FRAME RATE VIDEO: TIMECODES COUNT DECODED FRAMES AT {float(counting):.3f} FPS, "
                         "SO THEY DRIFT FROM THE CLOCK; EACH SHOT'S CLOCK TIME IS IN ITS COMMENT")
        elif any(s.first_frame is not None for s in shots):
            lines.append(f"* VARIABLE FRAME RATE VIDEO: THE SHOT TRACK GAVE FRAME NUMBERS FOR SOME SHOTS ONLY; "
                         f"THE OTHERS' FRAMES ASSUME A CONSTANT {fps:.3f} FPS")
        else:
            lines.append(f"* VARIABLE FRAME RATE VIDEO: THE SHOT TRACK GAVE NO FRAME NUMBERS; FRAMES ASSUME "
                         f"A CONSTANT {fps:.3f} FPS")
    return lines


def cmx3600(plan: EditPlan) -> str:
    """``cuts.edl``: one cut event per shot from reel ``AX``, clip name the video's file name,
    the shot's clock times and transition in a comment, markers as ``* LOC:`` locators."""
    import opentimelineio as otio

    counting = timecode_rate(plan.rate)
    fcm, *notes = edl_header(plan, counting)
    tl = to_otio(plan, counting)
    tl.name = edl_ascii(plan.title)[:70]
    clip_name = edl_ascii(plan.file_name)
    for i, clip in enumerate(tl.find_clips()):
        meta = clip.metadata.get("framework", {})
        # notes on the rate go with the first event: CMX 3600 readers (OpenTimelineIO's among them)
        # take only TITLE and FCM before it
        comments = [n.lstrip("* ") for n in notes] if i == 0 else []
        if meta:
            comments.append(f"SHOT {meta['shot']}: {meta['start']:.3f}-{meta['end']:.3f} S, "
                            f"TRANSITION IN: {edl_ascii(meta['transition_in']).upper()}")
        clip.name = clip_name
        clip.metadata["cmx_3600"] = {"reel": REEL, "comments": comments}
        for marker in clip.markers:
            marker.name = edl_ascii(one_line(marker.name, EDL_MAX_NAME))
    text = otio.adapters.write_to_string(tl, "cmx_3600", rate=float(counting), style="avid", reelname_len=8)
    events = sum(1 for line in text.splitlines() if re.match(r"^\d{3}\s", line))
    if events > 999:
        logger.warning("cuts.edl has %d events; strict CMX3600 readers stop at 999", events)
    first, _, rest = text.partition("\n")
    return "\n".join([first, fcm, "", rest.lstrip("\n")]).rstrip("\n") + "\n"


# --- the exporters -------------------------------------------------------------------------------------


class _EditorialExporter(Exporter):
    """Writes one file from the run's ``EditPlan`` (needs a video frame rate; with ``needs_shots``,
    a shot list too)."""

    needs_shots = False
    warm_imports = ("opentimelineio",)

    def render(self, plan: EditPlan) -> str:
        raise NotImplementedError

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        plan = plan_edit(timeline, context)
        if plan is None:
            return self.nothing_to_write(run_dir, "no video frame rate (audio-only input or an unknown rate)")
        if self.needs_shots and not plan.has_shots:
            return self.nothing_to_write(run_dir, "no shot list (no ok track providing 'shots' with 'shot' events)")
        return [atomic_write_text(run_dir / self.filenames[0], self.render(plan))]


class OtioExporter(_EditorialExporter):
    """``timeline.otio``: the shots and markers as an OpenTimelineIO timeline (Resolve, Kdenlive...)."""

    name = "otio"
    filenames = ("timeline.otio",)
    description = "the shots and markers as an OpenTimelineIO timeline"

    def render(self, plan: EditPlan) -> str:
        return otio_json(plan)


class FcpxmlExporter(_EditorialExporter):
    """``timeline.fcpxml``: the shots and markers for Final Cut Pro X."""

    name = "fcpxml"
    filenames = ("timeline.fcpxml",)
    description = "the shots and markers as FCPXML (Final Cut Pro X)"

    def render(self, plan: EditPlan) -> str:
        return fcpx_xml(plan)


class Fcp7Exporter(_EditorialExporter):
    """``timeline.fcp7.xml``: the shots and markers as Final Cut Pro 7 XML (Premiere, Resolve)."""

    name = "fcp7"
    filenames = ("timeline.fcp7.xml",)
    description = "the shots and markers as Final Cut Pro 7 XML (Premiere, Resolve)"

    def render(self, plan: EditPlan) -> str:
        return fcp7_xml(plan)


class EdlExporter(_EditorialExporter):
    """``cuts.edl``: the shots as a CMX 3600 edit decision list, markers as locators."""

    name = "edl"
    filenames = ("cuts.edl",)
    description = "the shots as a CMX 3600 EDL, markers as locators"
    needs_shots = True

    def render(self, plan: EditPlan) -> str:
        return cmx3600(plan)
