"""``MediapipeFrameAnalyzer``: the device-step base of the mediapipe frame analyzers
(face_detection, facial_details, eye_tracking, hand_gesture, audio_visual_sync), and the checks
and clean-up their mediapipe readers share.

The analyzers read one RGB stream (``fps``, ``width`` wide) with a reader built on mediapipe's
legacy solutions (mediapipe 0.10.21, models bundled in the wheel). Items are the sampled frames
``(time, frame)``; ``forward`` reads each frame of a batch on the device thread (mediapipe graphs
keep state and stay on that one thread), ``postprocess`` pairs each time with what was read.
Subclasses declare ``Params`` (with ``fps``, ``width``, ``batch_size``), ``make_reader`` and
``finish``; ``read_frame`` and ``postprocess`` may be overridden to keep more or less per frame.

``mediapipe_solutions`` checks the bundled models handed over against the imported mediapipe;
``close_quietly`` closes graphs that may already be closed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from framework import AnalyzerUnavailable, BatchedAnalyzer, FrameSpec

from .common import SingleSpecFrames

#: per legacy solution: how the error messages name its models and the solution itself
_SOLUTION_WORDS = {"face_detection": ("face models", "face solutions"),
                   "face_mesh": ("FaceMesh models", "FaceMesh"),
                   "hands": ("hand models", "Hands")}


def mediapipe_solutions(package_dir: Path | None, who: str, solution: str = "face_detection") -> Any:
    """``mediapipe.solutions``, after checking that the bundled models handed over (``package_dir``,
    the runner's path for a ``bundled`` manifest entry) are those of the imported mediapipe, which
    has the legacy ``solution`` (0.10.21; later releases dropped them and ship no models).

    :raises AnalyzerUnavailable: another mediapipe's folder, or a mediapipe without the solution.
    """
    import mediapipe as mp

    models, legacy = _SOLUTION_WORDS[solution]
    here = Path(mp.__file__).resolve().parent
    if package_dir is not None and Path(package_dir).resolve() != here:
        raise AnalyzerUnavailable(f"{who}: the {models} handed over ({package_dir}) are not those of the "
                                  f"imported mediapipe ({here}); its legacy solutions load only their own")
    if not hasattr(mp, "solutions") or not hasattr(mp.solutions, solution):
        raise AnalyzerUnavailable(f"{who} needs mediapipe's legacy {legacy} (mediapipe 0.10.21); "
                                  f"mediapipe {getattr(mp, '__version__', '?')} has none: pip install mediapipe==0.10.21")
    return mp.solutions


def build_graph(who: str, what: str, factory: Callable[[], Any]) -> Any:
    """``factory()``: one legacy solution's graph (``what``, e.g. "Hands"), with a protobuf that
    cannot build it named. mediapipe 0.10.21 builds its graphs with protobuf 4.25 or 6.x. protobuf 7
    dropped ``FieldDescriptor.label``, which the legacy graphs set while building (an AttributeError);
    with protobuf 5.x mediapipe's C++ cannot parse the graph config it is handed (a RuntimeError,
    "Failed to parse"). Either way every legacy graph fails alike (bench/results/mediapipe_numpy2_cpu.md).

    :raises AnalyzerUnavailable: the graph cannot be built with the installed protobuf.
    """
    try:
        return factory()
    except (AttributeError, RuntimeError) as exc:
        import google.protobuf
        import mediapipe as mp

        version = google.protobuf.__version__
        if isinstance(exc, RuntimeError) and not (version.startswith("5.") and str(exc).startswith("Failed to parse")):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnalyzerUnavailable(f"{who}: mediapipe {getattr(mp, '__version__', '?')} cannot build its {what} graph "
                                  f"with protobuf {version} ({reason}); install the protobuf the lock file pins "
                                  f"(4.25.9; 6.x works too): pip install 'protobuf<5'") from exc


def close_quietly(*graphs: Any) -> None:
    """Close each mediapipe graph (or reader), ignoring failures."""
    for graph in graphs:
        try:
            graph.close()
        except Exception:  # noqa: BLE001 - closing twice or after a failed graph is harmless
            pass


class MediapipeFrameAnalyzer(SingleSpecFrames, BatchedAnalyzer):
    """One RGB frame stream read frame by frame with a mediapipe reader on the device thread (CPU)."""

    device = "cpu"
    batch_size = 8

    reader: Any = None

    def make_reader(self, models: dict[str, Path]) -> Any:
        """The reader (``read(frame)``, ``close()``) over the models ``load`` was handed."""
        raise NotImplementedError

    def read_frame(self, frame: Any) -> Any:
        """What ``forward`` keeps of one RGB frame (on the device thread): the reader's result."""
        return self.reader.read(frame)

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.width)]

    def load(self, device: str, models: dict[str, Path]) -> None:
        self.reader = self.make_reader(models)

    def unload(self) -> None:  # no model: only the reader's graphs
        if self.reader is not None:
            self.reader.close()
        self.reader = None

    # --- the device step (items and count_items: ``SingleSpecFrames``) --------------------------
    def forward(self, batch: list[Any]) -> list[Any]:
        assert self.reader is not None
        return [self.read_frame(frame) for _, frame in batch]  # mediapipe graphs stay on this one thread

    def postprocess(self, outputs: Any, items: list[Any]) -> list[Any]:
        return [(float(t), out) for (t, _), out in zip(items, outputs)]
