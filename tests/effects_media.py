"""Generated videos with known visual effects, for tests/test_visual_effects.py and tests/test_temporal.py.

Every picture is a textured colour image (``framework.testing.synth``'s looks) cropped by a moving
window, so each frame differs from the last unless an effect says otherwise; the truth is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framework.testing.synth import _encode_rgb_frames, _look_image

W, H, FPS = 320, 180, 25.0


def _bounce(v: float, span: int) -> int:
    """``v`` folded into 0..span (a window that turns back at the image's edges, never jumps)."""
    v = abs(v) % (2 * span)
    return int(round(v if v <= span else 2 * span - v))


def pan(look: int, speed: float = 2.0, dy: float = 0.0):
    """Frame i of look ``look`` seen through a window panning ``speed`` px per frame."""
    base = _look_image(look, W, H)
    bh, bw = base.shape[:2]

    def frame(i: int) -> np.ndarray:
        x = _bounce(i * speed + (bw - W) / 2, bw - W)
        y = _bounce(i * dy + (bh - H) / 2, bh - H)
        return base[y:y + H, x:x + W].copy()

    return frame


@dataclass
class Clip:
    path: Path
    fps: float
    truth: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def effects_clip(path: Path) -> Clip:
    """15 s at 25 fps, 320x180, no audio; the truth (seconds) of each effect:

    - 0-6 s one panning shot with a 3-frame white flash at 1.0 s and a freeze frame from frame 74
      (2.96 s) to 4.48 s, after which the pan resumes;
    - 6.0-6.6 s black frames;
    - 6.6-9.0 s a new panning shot in slow motion: every frame shown twice;
    - 9.0-12.0 s a split screen: a panning picture on the left, a still one on the right;
    - 12.0-15.0 s picture-in-picture: a panning background with a 112x64 inset in a 2 px white
      frame, 24 px from the bottom right corner, showing another picture moving vertically.
    """
    a, b, c, d, e, f = pan(0), pan(1, 3.0), pan(2, 2.5), pan(3, 0.0), pan(4, -2.0), pan(5, 0.0, 1.5)
    frames = []
    for i in range(int(15 * FPS)):
        t = i / FPS
        if t < 6.0:
            src = min(i, 74) if 74 <= i < 112 else (i - 37 if i >= 112 else i)  # frozen 74..111, then on
            img = a(src)
            if 25 <= i < 28:
                img = (img * 0.2 + 255 * 0.8).astype(np.uint8)
        elif t < 6.6:
            img = np.zeros((H, W, 3), np.uint8)
        elif t < 9.0:
            img = b((i - 165) // 2)
        elif t < 12.0:
            img = np.concatenate([c(i)[:, :W // 2], d(0)[:, W // 2:]], axis=1)
        else:
            img = e(i)
            img[H - 64 - 24 - 2:H - 24 + 2, W - 112 - 24 - 2:W - 24 + 2] = 255  # a 2 px white frame
            img[H - 64 - 24:H - 24, W - 112 - 24:W - 24] = f(i)[:64, :112]
        frames.append(img)
    _encode_rgb_frames(path, frames, FPS, W, H, crf=18)
    return Clip(path, FPS, {"flash": [(1.0, 1.12)], "freeze": [(2.96, 4.48)], "black": [(6.0, 6.6)],
                            "slow_motion": [(6.6, 9.0)], "split_screen": [(9.0, 12.0)],
                            "picture_in_picture": [(12.0, 15.0)]})


def consistency_clip(path: Path) -> Clip:
    """10 s at 25 fps, 320x180, no audio; two panning shots (cut at 5.0 s):

    - shot 1 flickers from 1.0 to 3.0 s: the brightness alternates +-8 levels every 2 frames (6.25 Hz);
    - shot 2 gets brighter by 40 levels at once at 6.6 s (an exposure jump) and turns bluer at once
      at 8.4 s (a colour jump: red -30, blue +30 levels);
    - a slow brightening across shot 1 from 3.5 to 5.0 s (30 levels over 1.5 s) is neither.
    """
    a, b = pan(6, 2.0), pan(7, -2.0)
    frames = []
    for i in range(int(10 * FPS)):
        t = i / FPS
        if t < 5.0:
            img = a(i).astype(np.float32)
            if 1.0 <= t < 3.0:
                img += 8.0 if (i // 2) % 2 else -8.0
            if t >= 3.5:
                img += 30.0 * min(1.0, (t - 3.5) / 1.5)
        else:
            img = b(i).astype(np.float32) * 0.7
            if t >= 6.6:
                img += 40.0
            if t >= 8.4:
                img[..., 0] -= 30.0
                img[..., 2] += 30.0
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    _encode_rgb_frames(path, frames, FPS, W, H, crf=18)
    return Clip(path, FPS, {"flicker": [(1.0, 3.0)], "exposure_jump": [(6.6, 6.6)], "color_jump": [(8.4, 8.4)]})
