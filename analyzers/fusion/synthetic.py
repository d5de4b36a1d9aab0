"""Synthetic timelines with realistic event densities, for the fusion tests and benchmark.

``synthetic_tracks(duration)`` returns the tracks the built-in analyzers (and the planned VLM,
transcript, object, OCR and emotion analyzers, plus one unknown third-party analyzer) would
produce for a video of that length: a shot every ~4 s, scenes of 3-10 shots, speech over about
60% of the time, objects per shot, on-screen text now and then, a 10 Hz loudness series and an
8 Hz motion series. Seeded, so every run is the same.
"""
from __future__ import annotations

import random

from framework import Event, Series, Timeline, Track, VideoMeta

WORDS = ("the a man woman child dog car street kitchen table window door runs walks says looks opens closes "
         "bright dark rain sun city park river bridge phone laptop coffee music laughs shouts whispers quickly "
         "slowly again later before after near far red blue green old new small big").split()
OBJECTS = ("person", "car", "dog", "cup", "laptop", "chair", "bicycle", "phone", "book", "bottle")
MOVES = ("static", "static", "static", "pan", "tilt", "zoom", "shake")
EMOTIONS = ("neutral", "neutral", "happy", "sad", "surprise", "angry")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _track(name: str, events: list[Event] | None = None, series: list[Series] | None = None,
           data: dict | None = None) -> Track:
    return Track(analyzer=name, version="synthetic", events=events or [], series=series or [], data=data or {})


def synthetic_tracks(duration: float, seed: int = 0) -> dict[str, Track]:
    """Tracks for a video of ``duration`` seconds (see the module docstring)."""
    rng = random.Random(seed)
    shots: list[tuple[float, float]] = []
    t = 0.0
    while t < duration - 0.5:
        d = min(duration - t, rng.uniform(2.0, 6.0))
        shots.append((t, t + d))
        t += d
    if shots:
        shots[-1] = (shots[-1][0], duration)
    cut_ev, cam_ev, col_ev, obj_ev = [], [], [], []
    for i, (a, b) in enumerate(shots):
        trans = "start" if i == 0 else rng.choice(("cut",) * 8 + ("fade", "dissolve"))
        cut_ev.append(Event(start=a, end=b, label="shot", data={"index": i, "transition_in": trans}))
        if trans == "cut":
            cut_ev.append(Event(start=a, end=a, label="cut", score=round(rng.random(), 3)))
        elif trans != "start":
            cut_ev.append(Event(start=max(0.0, a - 0.5), end=min(duration, a + 0.5), label=trans, score=0.8))
        cam_ev.append(Event(start=a, end=b, label=rng.choice(MOVES), score=round(rng.random(), 3)))
        col_ev.append(Event(start=a, end=b, label="palette",
                            data={"colors": ["#%06x" % rng.randrange(1 << 24) for _ in range(3)], "shot": i}))
        for _ in range(rng.randint(0, 3)):
            oa = rng.uniform(a, b)
            obj_ev.append(Event(start=oa, end=min(b, oa + rng.uniform(0.5, 3.0)), label=rng.choice(OBJECTS),
                                score=round(rng.uniform(0.3, 0.99), 3)))
    scenes, k = [], 0
    while k < len(shots):
        n = rng.randint(3, 10)
        idx = list(range(k, min(len(shots), k + n)))
        scenes.append(Event(start=shots[idx[0]][0], end=shots[idx[-1]][1], label="scene",
                            data={"index": len(scenes), "shot_indices": idx}))
        k += n
    speech, emo = [], []
    t = rng.uniform(0, 3)
    while t < duration - 1:
        d = rng.uniform(2.0, 6.0)
        if rng.random() < 0.6:
            end = min(duration, t + d)
            speech.append(Event(start=t, end=end, label="speech", data={"text": _sentence(rng, int(d * 2.5))}))
            if rng.random() < 0.5:
                emo.append(Event(start=t, end=end, label=rng.choice(EMOTIONS), score=round(rng.random(), 3)))
        t += d + rng.uniform(0.2, 1.5)
    ocr = [Event(start=a, end=min(duration, a + 4), label="text", data={"text": rng.choice(
        ["BREAKING NEWS", "CHAPTER ONE", "LIVE", "THE END", _sentence(rng, 3).upper()])})
           for a in sorted(rng.uniform(0, duration) for _ in range(max(1, int(duration / 120))))]
    vlm = [Event(start=s.start, end=s.end, label="description", data={"text": _sentence(rng, 14)}) for s in scenes]
    n10 = int(duration * 10)
    loud = Series(name="loudness", unit="dBFS", times=[i / 10 for i in range(n10)],
                  values=[round(-30 + 12 * rng.random() - (25 if (i // 300) % 17 == 0 else 0), 2) for i in range(n10)])
    silences = [Event(start=(i * 300) / 10, end=min(duration, (i * 300 + 300) / 10), label="silence",
                      data={"mean_db": -55.0}) for i in range(n10 // 300) if i % 17 == 0]
    n8 = int(duration * 8)
    motion = Series(name="motion", unit="frame/s", times=[i / 8 for i in range(n8)],
                    values=[round(rng.random() * 0.2, 3) for _ in range(n8)])
    n2 = int(duration * 2)
    bright = Series(name="brightness", times=[i / 2 for i in range(n2)], values=[round(rng.random(), 3) for _ in range(n2)])
    widgets = [Event(start=a, end=a, label=rng.choice(("widget", "gizmo")), data={"strength": round(rng.random(), 2)})
               for a in sorted(rng.uniform(0, duration) for _ in range(max(1, int(duration / 30))))]
    return {
        "cut_analysis": _track("cut_analysis", cut_ev, data={"shot_count": len(shots)}),
        "scene_segmentation": _track("scene_segmentation", scenes),
        "camera_analysis": _track("camera_analysis", cam_ev, [motion]),
        "color_analysis": _track("color_analysis", col_ev, [bright]),
        "audio_analysis": _track("audio_analysis", silences, [loud], {"tempo_bpm": 110.0}),
        "transcript": _track("transcript", speech),
        "vlm_descriptions": _track("vlm_descriptions", vlm),
        "object_detection": _track("object_detection", obj_ev),
        "text_overlay": _track("text_overlay", ocr),
        "face_emotion": _track("face_emotion", emo),
        "acme_widgets": _track("acme_widgets", widgets),  # an unknown third-party analyzer
    }


def synthetic_timeline(duration: float, seed: int = 0) -> Timeline:
    """A whole ``Timeline`` around ``synthetic_tracks`` (the video itself does not exist)."""
    meta = VideoMeta(path=f"synthetic-{duration:.0f}s.mp4", content_hash=f"synthetic-{seed}-{duration:.0f}",
                     size_bytes=0, duration=duration, has_video=True, width=1280, height=720, fps=25.0)
    return Timeline(video=meta, tracks=synthetic_tracks(duration, seed))
