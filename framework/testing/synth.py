"""Synthetic videos with known ground truth: shot changes, fades, motion, audio, a text overlay.

Used by the README's sample run (``framework sample``), by the tests (a user's checkout has no
real media) and by the benchmarks. Everything is generated from a seed, so the truth is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

Transition = Literal["cut", "fade", "dissolve"]
Motion = Literal["static", "pan", "tilt", "zoom", "shake"]
AudioKind = Literal["tone", "speech", "silence"]


@dataclass(frozen=True)
class ShotSpec:
    """One shot: how long it lasts, how the camera moves, and how it starts."""

    duration: float
    motion: Motion = "static"
    transition: Transition = "cut"  # how this shot begins (ignored for the first shot)
    transition_s: float = 1.0       # length of a fade or dissolve
    look: int | None = None         # scene look; shots with the same look belong together


@dataclass(frozen=True)
class AudioSegment:
    start: float
    end: float
    kind: AudioKind = "tone"
    freq: float = 440.0
    level: float = 0.3


@dataclass
class SynthTruth:
    """What was generated: the ground truth the tests and benchmarks compare against."""

    path: Path
    fps: float
    width: int
    height: int
    duration: float
    frame_count: int
    cut_frames: list[int] = field(default_factory=list)        # first frame of each new shot (hard cuts)
    gradual: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, kind)
    shot_starts: list[float] = field(default_factory=list)      # seconds, including 0
    motions: list[str] = field(default_factory=list)
    looks: list[int] = field(default_factory=list)
    audio: list[AudioSegment] = field(default_factory=list)
    text: str | None = None


def default_shots(total: float = 12.0) -> list[ShotSpec]:
    """A small varied programme: cuts, one fade, one dissolve, and different camera moves."""
    plan = [("static", "cut", 0), ("pan", "cut", 1), ("zoom", "cut", 2), ("static", "fade", 3),
            ("tilt", "cut", 0), ("shake", "dissolve", 4)]
    each = total / len(plan)
    return [ShotSpec(duration=each, motion=m, transition=t, look=look) for m, t, look in plan]


def _look_image(look: int, width: int, height: int) -> np.ndarray:
    """A textured, colourful still, larger than the frame so the camera can move across it."""
    import cv2

    rng = np.random.default_rng(1000 + look)
    big_w, big_h = int(width * 1.6), int(height * 1.6)
    small = rng.integers(0, 256, size=(max(4, big_h // 24), max(4, big_w // 24), 3), dtype=np.uint8)
    img = cv2.resize(small, (big_w, big_h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    hue = rng.random(3) * 0.8 + 0.2
    img = img * hue  # give each look its own colour cast
    for _ in range(6):  # a few hard-edged shapes give optical flow something to track
        x, y = int(rng.integers(0, big_w)), int(rng.integers(0, big_h))
        r = int(rng.integers(big_h // 20 + 2, big_h // 6 + 3))
        color = [float(c) for c in rng.integers(0, 256, 3)]
        cv2.circle(img, (x, y), r, color, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _camera_crop(base: np.ndarray, motion: str, u: float, frame_i: int, width: int, height: int) -> np.ndarray:
    import cv2

    bh, bw = base.shape[:2]
    mx, my = bw - width, bh - height
    if motion == "pan":
        x, y, scale = mx * u, my / 2, 1.0
    elif motion == "tilt":
        x, y, scale = mx / 2, my * u, 1.0
    elif motion == "zoom":
        x, y, scale = mx / 2, my / 2, 1.0 - 0.35 * u
    elif motion == "shake":
        rng = np.random.default_rng(frame_i)
        x, y, scale = mx / 2 + rng.normal(0, width * 0.02), my / 2 + rng.normal(0, height * 0.02), 1.0
    else:
        x, y, scale = mx / 2, my / 2, 1.0
    cw, ch = width / scale, height / scale
    cx, cy = x + width / 2, y + height / 2
    x0 = int(np.clip(cx - cw / 2, 0, bw - cw))
    y0 = int(np.clip(cy - ch / 2, 0, bh - ch))
    crop = base[y0:y0 + int(ch), x0:x0 + int(cw)]
    if crop.shape[1] != width or crop.shape[0] != height:
        crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
    return crop


def _audio_samples(segments: list[AudioSegment], duration: float, rate: int) -> np.ndarray:
    n = int(round(duration * rate))
    out = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(7)
    for seg in segments:
        a, b = int(seg.start * rate), min(n, int(seg.end * rate))
        if b <= a or seg.kind == "silence":
            continue
        t = np.arange(b - a, dtype=np.float64) / rate
        if seg.kind == "tone":
            wave = np.sin(2 * np.pi * seg.freq * t)
        else:  # speech-like: a voiced harmonic stack with syllable-rate bursts and pitch drift
            f0 = seg.freq * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
            phase = 2 * np.pi * np.cumsum(f0) / rate
            wave = sum(np.sin(k * phase) / k for k in range(1, 6))
            syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.random() * 6), 0, None) ** 0.5
            wave = wave * syllables + rng.normal(0, 0.02, size=t.size)
        ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)  # 10 ms ramps, no clicks
        out[a:b] += (seg.level * wave * ramp).astype(np.float32)
    return np.clip(out, -1, 1)


def make_video(path: str | Path, shots: list[ShotSpec] | None = None, *, fps: float = 30.0,
               width: int = 320, height: int = 180, audio: list[AudioSegment] | None | Literal[False] = None,
               text: str | None = "FRAMEWORK SAMPLE", codec: str = "libx264",
               audio_rate: int = 44100, crf: int = 23, preset: str = "ultrafast") -> SynthTruth:
    """Encode a synthetic video and return its ground truth.

    :param shots: the shot list (default: ``default_shots()``).
    :param audio: audio segments; ``None`` gives speech-like audio then a tone with a silent gap;
        ``False`` writes no audio stream at all.
    :param text: an overlay burned into the bottom of every frame (``None`` for none).
    """
    import av
    import cv2

    path = Path(path)
    shots = shots or default_shots()
    duration = sum(s.duration for s in shots)
    if audio is None:
        audio = [AudioSegment(0.2, duration * 0.45, "speech", 140.0, 0.35),
                 AudioSegment(duration * 0.6, duration - 0.2, "tone", 440.0, 0.25)]
    fps_frac = Fraction(fps).limit_denominator(1001)
    n_frames = int(round(duration * fps))
    starts_f = []
    acc = 0.0
    for s in shots:
        starts_f.append(int(round(acc * fps)))
        acc += s.duration
    truth = SynthTruth(path=path, fps=float(fps), width=width, height=height,
                       duration=n_frames / fps, frame_count=n_frames, text=text,
                       audio=list(audio) if audio else [])
    looks = [s.look if s.look is not None else i for i, s in enumerate(shots)]
    bases = {lk: _look_image(lk, width, height) for lk in set(looks)}
    for i, s in enumerate(shots):
        truth.shot_starts.append(starts_f[i] / fps)
        truth.motions.append(s.motion)
        truth.looks.append(looks[i])
        if i > 0:
            if s.transition == "cut":
                truth.cut_frames.append(starts_f[i])
            else:
                half = s.transition_s / 2
                truth.gradual.append((starts_f[i] / fps - half, starts_f[i] / fps + half, s.transition))

    def shot_frame(i: int, f: int) -> np.ndarray:
        s = shots[i]
        end_f = starts_f[i + 1] if i + 1 < len(shots) else n_frames
        u = (f - starts_f[i]) / max(1, end_f - starts_f[i] - 1)
        return _camera_crop(bases[looks[i]], s.motion, float(np.clip(u, 0, 1)), f, width, height)

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream(codec, rate=fps_frac)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vstream.options = {"crf": str(crf), "preset": preset, "g": str(int(fps * 2))}
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "mono"
        shot_i = 0
        for f in range(n_frames):
            while shot_i + 1 < len(shots) and f >= starts_f[shot_i + 1]:
                shot_i += 1
            img = shot_frame(shot_i, f).astype(np.float32)
            t = f / fps
            for j in (shot_i, shot_i + 1):  # the transitions into this shot and into the next
                if j <= 0 or j >= len(shots) or shots[j].transition == "cut":
                    continue
                boundary, half = starts_f[j] / fps, shots[j].transition_s / 2
                if not boundary - half <= t < boundary + half:
                    continue
                if shots[j].transition == "fade":  # out to black, then in from black
                    img = img * (abs(t - boundary) / half)
                else:  # dissolve: blend the outgoing and incoming shots
                    w = (t - (boundary - half)) / (2 * half)
                    out_img = img if j - 1 == shot_i else shot_frame(j - 1, f).astype(np.float32)
                    in_img = img if j == shot_i else shot_frame(j, f).astype(np.float32)
                    img = out_img * (1 - w) + in_img * w
            frame = np.clip(img, 0, 255).astype(np.uint8)
            if text:
                scale = height / 360
                cv2.rectangle(frame, (0, height - int(40 * scale) - 4), (width, height), (0, 0, 0), -1)
                cv2.putText(frame, text, (int(10 * scale) + 2, height - int(12 * scale)),
                            cv2.FONT_HERSHEY_SIMPLEX, max(0.35, 0.9 * scale), (255, 255, 255),
                            max(1, int(2 * scale)), cv2.LINE_AA)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = f
            vf.time_base = Fraction(1) / fps_frac
            for packet in vstream.encode(vf):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            samples = _audio_samples(list(audio), truth.duration, audio_rate)
            block = 1024
            for k in range(0, samples.size, block):
                chunk = samples[k:k + block]
                if chunk.size < block:
                    chunk = np.pad(chunk, (0, block - chunk.size))
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
                af.sample_rate = audio_rate
                af.pts = k
                af.time_base = Fraction(1, audio_rate)
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return truth


def make_audio_only(path: str | Path, duration: float = 4.0, rate: int = 44100) -> Path:
    """An audio-only file (AAC in .m4a or MP4), for the 'no video stream' case."""
    import av

    path = Path(path)
    samples = _audio_samples([AudioSegment(0.2, duration - 0.2, "speech", 150.0, 0.4)], duration, rate)
    with av.open(str(path), mode="w") as container:
        astream = container.add_stream("aac", rate=rate)
        astream.layout = "mono"
        for k in range(0, samples.size, 1024):
            chunk = samples[k:k + 1024]
            if chunk.size < 1024:
                chunk = np.pad(chunk, (0, 1024 - chunk.size))
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, k, Fraction(1, rate)
            for packet in astream.encode(af):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return path


# ---------------------------------------------------------------------------------------------
# single-shot slow changes and a plain cross-dissolve (traps and truth for the dissolve detector)
# ---------------------------------------------------------------------------------------------
def _encode_rgb_frames(path: Path, frames, fps: float, width: int, height: int, crf: int = 20) -> None:
    """Encode RGB frames (an iterable of (height, width, 3) uint8) as H.264 in ``path``, no audio."""
    import av

    fps_frac = Fraction(fps).limit_denominator(1001)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=fps_frac)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.options = {"crf": str(crf), "preset": "ultrafast", "g": str(int(fps * 2))}
        for f, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = f, Fraction(1) / fps_frac
            for packet in vstream.encode(vf):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)


def _sensor_noise(img: np.ndarray, rng: np.random.Generator, sigma: float = 1.2) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, size=img.shape), 0, 255).astype(np.uint8)


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


def make_sky_tilt(path: str | Path, duration: float = 6.0, *, fps: float = 30.0, width: int = 320,
                  height: int = 180, sweep: float = 2.0, seed: int = 0) -> SynthTruth:
    """One shot: the camera tilts steadily up a plain, overcast grey sky (a smooth, slightly
    curved brightness gradient with faint, very soft cloud shading), ``sweep`` frame heights in
    ``duration`` seconds. Nothing but the view changes: there is no cut, fade or dissolve.
    """
    import cv2

    path = Path(path)
    rng = np.random.default_rng(seed)
    big_h = int(height * (sweep + 1.2))
    y = np.linspace(0.0, 1.0, big_h)[:, None]
    lum = 212.0 - 70.0 * y ** 1.6  # brighter up high, darker towards the horizon
    clouds = cv2.resize(rng.normal(0, 1, size=(max(3, big_h // 60), 4)), (width, big_h),
                        interpolation=cv2.INTER_CUBIC) * 3.0
    grey = lum + clouds
    sky = np.stack([grey * 0.97, grey * 0.99, grey * 1.03], axis=-1).astype(np.float32)
    n = int(round(duration * fps))
    top0 = big_h - height - 1.0  # start low, tilt up

    def frames():
        for f in range(n):
            top = top0 - sweep * height * f / max(1, n - 1)
            m = np.float32([[1, 0, 0], [0, 1, top]])
            view = cv2.warpAffine(sky, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            yield _sensor_noise(view, rng)

    _encode_rgb_frames(path, frames(), fps, width, height)
    return SynthTruth(path=path, fps=fps, width=width, height=height, duration=n / fps, frame_count=n,
                      shot_starts=[0.0], motions=["tilt"], looks=[0], text=None)


def _figure_scene(width: int, height: int, seed: int, horizon: float = 0.55) -> np.ndarray:
    """A muted outdoor scene: a dark standing figure on grass below an overcast sky, the hills'
    line near ``horizon`` (a fraction of the height), as float32 RGB."""
    import cv2

    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    img = np.broadcast_to(np.where(y < horizon, 170 - 30 * y, 95 + 20 * y), (height, width, 1)) * \
        np.array([0.95, 1.0, 1.02])
    img = np.ascontiguousarray(img, dtype=np.float32)
    hills = (horizon + 0.06 * np.sin(np.linspace(0, 3 * np.pi, width) + rng.random() * 6)) * height
    for x in range(width):
        img[int(hills[x]):, x] = img[int(hills[x]):, x] * 0.8 + np.array([10, 25, 5], dtype=np.float32)
    cx, base = int(width * (0.4 + 0.2 * rng.random())), int(height * 0.85)
    fig_h = int(height * 0.55)
    body = (40, 38, 44)
    cv2.ellipse(img, (cx, base - fig_h // 2), (max(3, fig_h // 9), fig_h // 3), 0, 0, 360, body, -1)
    cv2.circle(img, (cx, base - fig_h + fig_h // 10), max(3, fig_h // 10), body, -1)
    cv2.line(img, (cx - fig_h // 16, base - fig_h // 5), (cx - fig_h // 12, base), body, max(2, fig_h // 20))
    cv2.line(img, (cx + fig_h // 16, base - fig_h // 5), (cx + fig_h // 12, base), body, max(2, fig_h // 20))
    return cv2.GaussianBlur(img, (3, 3), 0)


def make_fog_clearing(path: str | Path, *, fps: float = 30.0, width: int = 320, height: int = 180,
                      before_s: float = 1.5, clearing_s: float = 1.5, after_s: float = 2.0,
                      residual: float = 0.0, seed: int = 0) -> SynthTruth:
    """One shot: dense fog (a flat grey, keeping ``residual`` of the scene's contrast) clears over
    ``clearing_s`` seconds around a standing figure. The picture is the same scene throughout,
    its contrast rising from (almost) nothing: there is no cut, fade or dissolve.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    scene = _figure_scene(width, height, seed)
    fog = np.full_like(scene, float(scene.mean()) + 25.0)
    n_before, n_clear = int(round(before_s * fps)), int(round(clearing_s * fps))
    n = n_before + n_clear + int(round(after_s * fps))

    def frames():
        for f in range(n):
            clear = residual + (1 - residual) * _smoothstep((f - n_before) / max(1, n_clear))
            yield _sensor_noise(fog * (1 - clear) + scene * clear, rng)

    _encode_rgb_frames(path, frames(), fps, width, height)
    return SynthTruth(path=path, fps=fps, width=width, height=height, duration=n / fps, frame_count=n,
                      shot_starts=[0.0], motions=["static"], looks=[0], text=None)


def make_cross_dissolve(path: str | Path, *, fps: float = 30.0, width: int = 320, height: int = 180,
                        before_s: float = 2.0, dissolve_s: float = 1.0, after_s: float = 2.0,
                        looks: tuple[int, int] = (0, 1), soft: bool = False, seed: int = 0) -> SynthTruth:
    """Two still shots joined by a linear cross-dissolve of ``dissolve_s`` seconds. The pictures
    are two synthetic looks, or with ``soft`` a low-contrast overcast scene with a figure
    dissolving into a different one (a dissolve between two pictures that are each mostly
    smooth). ``gradual`` holds the dissolve and ``shot_starts`` its middle frame's time."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    if soft:
        a = _figure_scene(width, height, looks[0] + 1)
        b = _figure_scene(width, height, looks[1] + 7, horizon=0.3) * 0.85  # another figure, a lower view
    else:
        a, b = (_camera_crop(_look_image(lk, width, height), "static", 0.0, 0, width, height).astype(np.float32)
                for lk in looks)
    n_before, n_mix = int(round(before_s * fps)), int(round(dissolve_s * fps))
    n = n_before + n_mix + int(round(after_s * fps))

    def frames():
        for f in range(n):
            w = min(1.0, max(0.0, (f - n_before + 1) / (n_mix + 1)))
            yield _sensor_noise(a * (1 - w) + b * w, rng)

    _encode_rgb_frames(path, frames(), fps, width, height)
    middle = n_before + n_mix // 2
    return SynthTruth(path=path, fps=fps, width=width, height=height, duration=n / fps, frame_count=n,
                      gradual=[(n_before / fps, (n_before + n_mix) / fps, "dissolve")],
                      shot_starts=[0.0, middle / fps], motions=["static", "static"], looks=list(looks), text=None)


# ---------------------------------------------------------------------------------------------
# container layouts: several video and audio streams, an index at the front (helper MEDIA)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoStreamSpec:
    """One video stream of ``make_multistream``: flat grey frames of level ``grey``."""

    width: int
    height: int
    fps: Fraction | float
    grey: int
    default: bool | None = None  # None: leave the disposition to the muxer


@dataclass(frozen=True)
class AudioStreamSpec:
    """One audio stream of ``make_multistream``: a sine tone of ``freq`` Hz on every channel."""

    rate: int
    channels: int
    freq: float
    default: bool | None = None


def make_multistream(path: str | Path, videos: list[VideoStreamSpec], audios: list[AudioStreamSpec],
                     duration: float = 2.0, gop: int = 12) -> Path:
    """A file with several video and audio streams, in the order given (videos first), so a test
    can tell from the decoded pixels (grey level) and sound (tone) which stream was used."""
    import av

    path = Path(path)
    with av.open(str(path), mode="w") as container:
        vstreams = []
        for spec in videos:
            rate = Fraction(spec.fps).limit_denominator(1001)
            s = container.add_stream("libx264", rate=rate)
            s.width, s.height, s.pix_fmt = spec.width, spec.height, "yuv420p"
            s.options = {"preset": "ultrafast", "g": str(gop)}
            if spec.default is not None:
                s.disposition = av.stream.Disposition.default if spec.default else av.stream.Disposition(0)
            vstreams.append((s, spec, rate))
        astreams = []
        for spec in audios:
            s = container.add_stream("aac", rate=spec.rate)
            s.layout = "mono" if spec.channels == 1 else "stereo"
            if spec.default is not None:
                s.disposition = av.stream.Disposition.default if spec.default else av.stream.Disposition(0)
            astreams.append((s, spec))
        for s, spec, rate in vstreams:
            img = np.full((spec.height, spec.width, 3), spec.grey, np.uint8)
            for f in range(int(round(duration * rate))):
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts, vf.time_base = f, 1 / rate
                for packet in s.encode(vf):
                    container.mux(packet)
            for packet in s.encode():
                container.mux(packet)
        for s, spec in astreams:
            n = int(round(duration * spec.rate))
            wave = (0.3 * np.sin(2 * np.pi * spec.freq * np.arange(n) / spec.rate)).astype(np.float32)
            for k in range(0, n, 1024):
                chunk = np.pad(wave[k:k + 1024], (0, max(0, 1024 - wave[k:k + 1024].size)))
                planes = np.repeat(chunk.reshape(1, -1), spec.channels, axis=0)
                af = av.AudioFrame.from_ndarray(planes, format="fltp", layout=s.layout.name)
                af.sample_rate, af.pts, af.time_base = spec.rate, k, Fraction(1, spec.rate)
                for packet in s.encode(af):
                    container.mux(packet)
            for packet in s.encode():
                container.mux(packet)
    return path


def make_faststart_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy ``src`` (MP4/MOV) without re-encoding into an MP4 whose index (the moov atom) comes
    before the media data, as streaming files have it: a copy cut short still opens."""
    import av

    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is None:  # the demuxer's end-of-stream flush packets
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst
