"""One small JPEG per shot, taken at the shot's midpoint, cached in ``run_dir/thumbs/``.

During ``framework run`` they come from a small 2 fps stream of the run's single decode pass
(``thumbnails_from_stream``). ``framework report`` on a run folder without them falls back to
a handful of seeks, not a second decode: for each shot the decoder seeks to the keyframe before
the midpoint and decodes forward to it (targets close to the last decoded frame are reached by
decoding on, without a seek). Files are named by the video's content hash and the time in
milliseconds, so ``framework report`` re-uses them and a changed shot list makes new ones.
"""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from ..timeline import Timeline
from .base import ExportContext, Exporter, atomic_write_bytes

logger = logging.getLogger(__name__)

THUMB_DIR = "thumbs"
THUMB_WIDTH = 160
JPEG_QUALITY = 80
SEEK_GAP_S = 2.0  # decode on (no seek) when the next target is closer than this


def _hash_prefix(content_hash: str) -> str:
    """12 filename-safe characters of the content hash (``blake2b:9f3c...`` -> ``9f3c...``)."""
    return re.sub(r"[^0-9A-Za-z]", "", (content_hash or "").split(":")[-1])[:12] or "video"


def thumb_name(content_hash: str, t: float) -> str:
    return f"{_hash_prefix(content_hash)}_{int(round(t * 1000)):09d}.jpg"


def shot_thumbnails(context: ExportContext) -> dict[int, Path]:
    """Shot index -> thumbnail path; decodes only the ones not cached. Empty without a video."""
    shots = context.shots()
    if not shots:
        return {}
    folder = context.run_dir / THUMB_DIR
    wanted = {s.index: folder / thumb_name(context.timeline.video.content_hash, s.midpoint) for s in shots}
    missing = {}
    for index, path in wanted.items():
        if path.is_file():
            continue
        for source in context.thumb_sources:
            if (source / path.name).is_file():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / path.name, path)
                break
        else:
            missing[index] = path
    if missing and context.video_path is None:
        logger.info("no thumbnails for %d shots: %s", len(missing), context.video_note)
    elif missing:
        times = {i: s.midpoint for s in shots for i in [s.index] if i in missing}
        try:
            grab_frames(context.video_path, {missing[i]: t for i, t in times.items()},
                        rotation=context.timeline.video.rotation,
                        start_time=context.timeline.video.start_time)
        except Exception as exc:  # noqa: BLE001 - a report without thumbnails beats no report
            logger.warning("could not make thumbnails from %s: %s: %s", context.video_path,
                           type(exc).__name__, exc)
    _prune(folder, {p.name for p in wanted.values()}, context.timeline.video.content_hash)
    return {i: p for i, p in wanted.items() if p.is_file()}


def grab_frames(video: Path, targets: dict[Path, float], width: int = THUMB_WIDTH,
                rotation: int = 0, start_time: float = 0.0) -> int:
    """Write a JPEG of the frame shown at each target time; returns how many were written.

    :param targets: output path -> seconds on the presentation timeline (0 = the container's start).
    :param rotation: clockwise degrees a player turns the picture (``VideoMeta.rotation``).
    :param start_time: the container's start in its own clock (``VideoMeta.start_time``).
    """
    import av
    import cv2
    import numpy as np

    written = 0
    order = sorted(targets.items(), key=lambda kv: kv[1])
    with av.open(str(video)) as container:
        stream = container.streams.video[0]  # default (slice) threading: frame threads cost a flush per seek
        tb = float(stream.time_base)
        frames = None
        last_t = None
        prev = None
        for path, t in order:
            pts_t = t + start_time
            if frames is None or last_t is None or pts_t < last_t or pts_t - last_t > SEEK_GAP_S:
                container.seek(int(pts_t / tb), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
                prev = None
            chosen = None
            for frame in frames:
                ft = float(frame.pts * tb) if frame.pts is not None else (last_t or 0.0)
                last_t = ft
                if ft > pts_t + 1e-6:  # first frame past the target: the one before was showing
                    chosen = prev if prev is not None else frame
                    prev = frame
                    break
                prev = frame
            if chosen is None:
                chosen = prev  # the target is after the last frame: use the last one
            if chosen is None:
                logger.warning("%s: no frame decoded near %.2f s; no thumbnail", video, t)
                continue
            w, h = chosen.width, chosen.height
            if rotation % 180 == 90:  # the coded height becomes the displayed width
                size = (max(2, int(round(w * width / h / 2)) * 2), width)
            else:
                size = (width, max(2, int(round(h * width / w / 2)) * 2))
            image = chosen.reformat(width=size[0], height=size[1], format="bgr24").to_ndarray()
            if rotation % 360:  # degrees clockwise, as the container's ``rotate`` tag says
                image = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90) % 4))
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                atomic_write_bytes(path, buf.tobytes())
                written += 1
    return written


THUMB_STREAM_FPS = 2.0  # rate of the thumbnail stream the runner adds to its single decode pass


def thumbnail_spec():
    """The frame stream a run asks the decoder for so that no thumbnail needs a second decode."""
    from ..streams import FrameSpec

    return FrameSpec(fps=THUMB_STREAM_FPS, width=THUMB_WIDTH, pix_fmt="rgb24")


def thumbnails_from_stream(timeline: Timeline, run_dir: Path, stream) -> int:
    """Write each shot's thumbnail from an already decoded ``FrameStream`` (the frame nearest
    the shot's midpoint, within half a frame interval of the stream); returns how many were written.

    Used by the runner while its decode cache exists, so a run decodes the video once in all.
    """
    import cv2

    from .base import shots_of

    shots = shots_of(timeline)
    if not shots or len(stream) == 0:
        return 0
    folder = run_dir / THUMB_DIR
    written = 0
    for shot in shots:
        path = folder / thumb_name(timeline.video.content_hash, shot.midpoint)
        if path.is_file():
            continue
        i = stream.index_at(shot.midpoint)
        if i + 1 < len(stream) and abs(stream.times[i + 1] - shot.midpoint) < abs(stream.times[i] - shot.midpoint):
            i += 1
        rgb = stream.frames[i]
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            atomic_write_bytes(path, buf.tobytes())
            written += 1
    return written


def _prune(folder: Path, keep: set[str], content_hash: str) -> None:
    """Remove this video's thumbnails that no current shot uses (the shot list changed)."""
    if not folder.is_dir():
        return
    prefix = f"{_hash_prefix(content_hash)}_"
    for path in folder.glob(f"{prefix}*.jpg"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


class ThumbnailsExporter(Exporter):
    """``thumbs/*.jpg``: one ~160 px JPEG per shot (the report embeds them)."""

    name = "thumbnails"
    filenames = ("thumbs/",)  # one JPEG per shot inside
    description = "one small JPEG per shot, at its midpoint"

    def export(self, timeline: Timeline, run_dir: Path, context: ExportContext) -> list[Path]:
        """Returns the ``thumbs`` folder (one entry, not one per shot) when it holds any thumbnail."""
        return [run_dir / THUMB_DIR] if context.thumbnails() else []
