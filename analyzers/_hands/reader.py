"""mediapipe's legacy Hands (0.10.21; palm detection and hand landmark models bundled in the wheel)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


from .._vision.mediapipe_base import build_graph, close_quietly, mediapipe_solutions


@dataclass(frozen=True)
class HandObs:
    """One hand on one frame: ``box`` (x1, y1, x2, y2) and ``landmarks`` (21 x [x, y, z]) in frame
    fractions (z: depth relative to the wrist, in about the units of x), ``handedness`` (``left`` or
    ``right``: the person's own hand, see ``HandReader``) and its ``score``."""

    box: tuple[float, float, float, float]
    handedness: str
    score: float
    landmarks: tuple[tuple[float, float, float], ...]

    def as_dict(self) -> dict:
        return {"box": list(self.box), "handedness": self.handedness, "score": self.score,
                "landmarks": [list(p) for p in self.landmarks]}

    @classmethod
    def from_dict(cls, d: dict) -> "HandObs":
        return cls(box=tuple(d["box"]), handedness=d["handedness"], score=float(d["score"]),
                   landmarks=tuple(tuple(p) for p in d["landmarks"]))


class HandReader:
    """Hands and their 21 landmarks on single RGB frames (static-image mode: sampled frames are far
    apart and cross cuts, so there is no tracking between them).

    mediapipe labels handedness as if the picture were mirrored (a selfie camera). For ordinary
    video (``mirrored=False``) the label is swapped, so ``handedness`` is the person's own hand.
    """

    def __init__(self, package_dir: Path | None, max_hands: int = 4, min_confidence: float = 0.5,
                 model_complexity: int = 1, mirrored: bool = False, who: str = "hand_gesture"):
        solutions = mediapipe_solutions(package_dir, who, "hands")
        self.hands = build_graph(who, "Hands", lambda: solutions.hands.Hands(
            static_image_mode=True, max_num_hands=max_hands, model_complexity=model_complexity,
            min_detection_confidence=min_confidence))
        self.mirrored = mirrored

    def close(self) -> None:
        close_quietly(self.hands)

    def read(self, rgb: np.ndarray) -> list[HandObs]:
        """The hands on one RGB frame, most confident first."""
        result = self.hands.process(np.ascontiguousarray(rgb))
        found = []
        for lm, side in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
            pts = np.array([[p.x, p.y, p.z] for p in lm.landmark], dtype=np.float64)
            label = side.classification[0].label.lower()  # "left" / "right" as mediapipe sees it (mirrored)
            if not self.mirrored:
                label = {"left": "right", "right": "left"}.get(label, label)
            x1, y1 = np.clip(pts[:, :2].min(axis=0), 0, 1)
            x2, y2 = np.clip(pts[:, :2].max(axis=0), 0, 1)
            found.append(HandObs(box=(round(float(x1), 4), round(float(y1), 4), round(float(x2), 4), round(float(y2), 4)),
                                 handedness=label, score=round(float(side.classification[0].score), 4),
                                 landmarks=tuple((round(float(x), 4), round(float(y), 4), round(float(z), 4))
                                                 for x, y, z in pts)))
        return sorted(found, key=lambda h: -h.score)
