"""Scenes: consecutive shots grouped by visual similarity.

Reads the ``shot`` events of the upstream ``cut_analysis`` track and one small low-rate stream
(2 fps, 64 px wide by default). Each shot is described by the mean HSV colour histogram
(12 hue x 4 saturation x 4 value bins) of up to ``frames_per_shot`` frames spread over it;
two shots are similar when the intersection of their histograms is at least ``threshold``.

Grouping uses overlapping links (Hanjalic et al., 1999): shot ``i`` links forward to the
furthest shot ``j <= i + link_window`` similar to it, and a scene ends only where no link
crosses. So A-A-B-B splits into two scenes, while shot/reverse-shot patterns such as A-B-A or
A-B-A-B (and A-B-C-A with the default window of 3) stay one scene. A fade through black (a
``transition_in`` of ``"fade"``) always ends a scene when ``split_on_fades`` is set.

Events: one ``scene`` per scene, with ``start``/``end`` on the boundaries of its first and last
shot and ``data = {index, shot_indices, first_shot, last_shot, shot_count}``; ``score`` is the
mean similarity of the links that hold the scene together (1.0 for a one-shot scene).
Track data: ``scene_count``, ``shot_count``.
"""
from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, FrameSpec, FrameStream, Track

from ._shots import upstream_shots

logger = logging.getLogger(__name__)

_BINS = (12, 4, 4)
HIST_BLOCK = 256  # frames histogrammed at a time in shot_descriptors


def shot_list(inputs: AnalyzerInputs, duration: float) -> list[tuple[float, float, str]]:
    """(start, end, transition_in) of the upstream ``cut_analysis`` shots, in order.

    The whole video is one shot when the upstream track is missing, failed or has no shots.
    """
    shots = [(e.start, e.end, str(e.data.get("transition_in", "cut"))) for e in upstream_shots(inputs)]
    if not shots:
        track = inputs.upstream.get("cut_analysis")
        status = "missing" if track is None else track.status
        logger.warning("scene_segmentation: cut_analysis track is %s or has no shots; "
                       "treating the whole video as one shot", status)
        return [(0.0, max(duration, 0.0), "start")]
    return shots


def frame_histograms(frames: np.ndarray) -> np.ndarray:
    """Normalised 12x4x4 HSV histograms of RGB frames (N, H, W, 3) -> (N, 192) float32."""
    import cv2

    n, h, w, _ = frames.shape
    if n == 0:
        return np.zeros((0, int(np.prod(_BINS))), dtype=np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(frames).reshape(n * h, w, 3), cv2.COLOR_RGB2HSV).reshape(n, -1, 3)
    hb, sb, vb = _BINS
    code = (hsv[..., 0].astype(np.int32) * hb // 180) * (sb * vb) \
        + (hsv[..., 1].astype(np.int32) * sb // 256) * vb + hsv[..., 2].astype(np.int32) * vb // 256
    size = hb * sb * vb
    code += (np.arange(n, dtype=np.int32) * size)[:, None]
    counts = np.bincount(code.ravel(), minlength=n * size).reshape(n, size)
    return (counts / hsv.shape[1]).astype(np.float32)


def shot_descriptors(stream: FrameStream, shots: list[tuple[float, float, str]], per_shot: int) -> np.ndarray:
    """Mean HSV histogram of up to ``per_shot`` stream frames spread over each shot -> (S, 192).

    A shot shorter than the stream's sampling interval uses the frame nearest its middle.
    """
    times = np.asarray(stream.times)
    frames = stream.frames
    picks: list[np.ndarray] = []
    for start, end, _ in shots:
        inside = np.arange(np.searchsorted(times, start, "left"), np.searchsorted(times, end, "left"))
        if len(inside) == 0:
            inside = np.array([stream.index_at((start + end) / 2)]) if len(times) else inside
        if len(inside) > per_shot:
            inside = inside[np.linspace(0, len(inside) - 1, per_shot).round().astype(int)]
        picks.append(inside)
    flat = np.concatenate(picks) if picks else np.zeros(0, dtype=int)
    if len(flat) == 0:
        return np.zeros((len(shots), int(np.prod(_BINS))), dtype=np.float32)
    uniq, inverse = np.unique(flat, return_inverse=True)
    # a block of frames at a time: reading every picked frame at once grew with the film
    # (~75 MB of pixels and temporaries for an hour at the defaults)
    hists = np.concatenate([frame_histograms(np.asarray(frames[uniq[i:i + HIST_BLOCK]]))
                            for i in range(0, len(uniq), HIST_BLOCK)])[inverse]
    out = np.zeros((len(shots), hists.shape[1]), dtype=np.float32)
    pos = 0
    for s, idx in enumerate(picks):
        if len(idx):
            out[s] = hists[pos:pos + len(idx)].mean(axis=0)
        pos += len(idx)
    return out


def group_shots(desc: np.ndarray, threshold: float, window: int,
                hard_breaks: set[int] | None = None) -> list[tuple[list[int], float]]:
    """Overlapping-link grouping of shots -> [(shot indices, mean link similarity)].

    ``hard_breaks`` holds shot indices that always start a new scene.
    """
    n = len(desc)
    if n == 0:
        return []
    hard_breaks = hard_breaks or set()
    reach = list(range(n))  # furthest shot each shot links to
    link_sim: list[list[float]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(min(n - 1, i + window), i, -1):
            if any(b in hard_breaks for b in range(i + 1, j + 1)):
                continue
            sim = float(np.minimum(desc[i], desc[j]).sum())
            if sim >= threshold:
                reach[i] = j
                link_sim[i].append(sim)
                break
    scenes: list[tuple[list[int], float]] = []
    current: list[int] = []
    sims: list[float] = []
    furthest = -1
    for i in range(n):
        if current and i > furthest:  # no link reaches shot i: a new scene starts
            scenes.append((current, float(np.mean(sims)) if sims else 1.0))
            current, sims = [], []
        current.append(i)
        sims.extend(link_sim[i])
        furthest = max(furthest, reach[i])
    scenes.append((current, float(np.mean(sims)) if sims else 1.0))
    return scenes


class SceneSegmentation(Analyzer):
    """Groups consecutive shots of ``cut_analysis`` into scenes by colour similarity."""

    name = "scene_segmentation"
    original_status = "active"
    version = "1.0.0"
    description = "Scenes: consecutive shots grouped by colour similarity (shot/reverse-shot aware)."
    depends_on = ("cut_analysis",)
    provides = ("scenes",)

    class Params(Analyzer.Params):
        fps: float = Field(2.0, gt=0.0, le=30.0, description="frames per second read to describe shots")
        width: int = Field(64, ge=16, le=512)
        frames_per_shot: int = Field(3, ge=1, le=32)
        threshold: float = Field(0.65, gt=0.0, le=1.0, description="histogram intersection that links two shots")
        link_window: int = Field(3, ge=1, le=20, description="how many shots ahead a shot may link")
        split_on_fades: bool = True

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.width, pix_fmt="rgb24")]

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        stream = inputs.frames(self.frame_specs()[0])
        duration = float(inputs.video.duration or 0.0)
        shots = shot_list(inputs, duration)
        desc = shot_descriptors(stream, shots, p.frames_per_shot)
        breaks = {i for i, s in enumerate(shots) if s[2] == "fade"} if p.split_on_fades else set()
        groups = group_shots(desc, p.threshold, p.link_window, breaks)
        events = []
        for k, (members, sim) in enumerate(groups):
            events.append(Event(start=shots[members[0]][0], end=shots[members[-1]][1], label="scene",
                                score=round(sim, 4), data={
                                    "index": k, "shot_indices": members, "first_shot": members[0],
                                    "last_shot": members[-1], "shot_count": len(members)}))
        inputs.report(1.0)
        return self.track(events=events, data={"scene_count": len(events), "shot_count": len(shots)})
