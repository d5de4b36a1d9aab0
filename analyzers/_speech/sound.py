"""Sound classes and sudden sounds: frame features, the feature-based fallback, and AudioSet groups.

Two ways to say what a stretch of audio is:

- an AudioSet classifier through transformers (``ASTClassifier``: the Audio Spectrogram
  Transformer ``MIT/ast-finetuned-audioset-10-10-0.4593``, manifest id ``ast-audioset``), whose
  527 labels are grouped into ``speech``, ``music``, ``tone`` and ``noise`` (everything else) by
  ``label_groups``; used when its weights are pulled;
- the feature-based fallback, needing no weights: per 0.5 s block, the level (``silence`` under
  ``silence_db``), voice activity (``speech``: the upstream silero-vad segments), the share of the
  spectrum's energy in its strongest partial (``tone``: one partial holds 90 % of it), how alike
  consecutive log spectra are (``music``: sustained partials that stay put, with a spectrum far
  from flat) and otherwise ``noise``. It is crude: drums without pitched instruments read as
  noise, a sustained hum as a tone. The track says which method ran.

Every function reads audio in bounded pieces (``AudioTrack.chunks``), so memory stays flat.
"""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pydantic import Field

from framework import AUDIO_SAMPLE_RATE, AnalyzerUnavailable, AudioTrack, BatchedAnalyzer

from ..audio_analysis import rms_dbfs

logger = logging.getLogger(__name__)

SR = AUDIO_SAMPLE_RATE
N_FFT = 512
FRAME_HOP = 256                   # 16 ms frames for the spectral features
BAND = slice(3, 193)              # ~94 Hz - 6 kHz of the 31.25 Hz bins
ENV_HOP = 160                     # 10 ms frames for the level envelope
CLASSES = ("speech", "music", "tone", "noise", "silence")
_HANN = np.hanning(N_FFT + 1)[:-1].astype(np.float32)


# --- frame and block features -------------------------------------------------------------------
@dataclass
class BlockFeatures:
    """Per block (``hop_s`` seconds from the audio's start): level and spectral shape."""

    times: np.ndarray        # block starts, timeline seconds
    rms_db: np.ndarray
    flatness: np.ndarray     # 0 (pure partials) .. 1 (white noise), median over the block's frames
    peak_share: np.ndarray   # share of band energy within 2 bins of the strongest partial
    steadiness: np.ndarray   # correlation of consecutive log spectra (sustained partials ~1, noise ~0)


def _frames_power(y: np.ndarray) -> np.ndarray:
    n = 1 + max(0, y.size - N_FFT) // FRAME_HOP if y.size >= N_FFT else 0
    if n == 0:
        return np.zeros((0, N_FFT // 2 + 1), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::FRAME_HOP][:n]
    spec = np.fft.rfft(frames * _HANN, axis=1)
    return (spec.real ** 2 + spec.imag ** 2).astype(np.float32)


def _spectral(power: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: flatness, peak share, and correlation with the previous frame's log spectrum."""
    band = power[:, BAND].astype(np.float64) + 1e-12
    flat = np.exp(np.log(band).mean(axis=1)) / band.mean(axis=1)
    total = band.sum(axis=1)
    top = band.argmax(axis=1)
    csum = np.concatenate([np.zeros((len(band), 1)), np.cumsum(band, axis=1)], axis=1)
    lo, hi = np.maximum(0, top - 2), np.minimum(band.shape[1], top + 3)
    rows = np.arange(len(band))
    share = (csum[rows, hi] - csum[rows, lo]) / total
    logs = np.log(band)
    logs -= logs.mean(axis=1, keepdims=True)
    norm = np.sqrt((logs ** 2).sum(axis=1)) + 1e-12
    corr = np.ones(len(band))
    if len(band) > 1:
        corr[1:] = (logs[1:] * logs[:-1]).sum(axis=1) / (norm[1:] * norm[:-1])
    return flat, share, corr


def block_features(audio: AudioTrack, hop_s: float = 0.5) -> BlockFeatures:
    """Features of consecutive ``hop_s`` blocks of the whole track, read a minute at a time."""
    block = int(round(hop_s * SR))
    chunk_blocks = max(1, int(60.0 * SR) // block)
    rows: list[tuple[float, float, float, float]] = []
    for _, samples in audio.chunks(chunk_blocks * block / SR):
        for k, db in zip(range(0, samples.size, block), rms_dbfs(samples, block)):
            p = _frames_power(samples[k:k + block])
            if len(p) == 0:
                rows.append((db, 1.0, 0.0, 0.0))
                continue
            flat, share, corr = _spectral(p)
            rows.append((db, float(np.median(flat)), float(np.median(share)),
                         float(np.median(corr[1:])) if len(corr) > 1 else 0.0))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    times = audio.start_time + np.arange(len(arr)) * hop_s
    return BlockFeatures(times, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


def feature_classes(f: BlockFeatures, speech: np.ndarray, silence_db: float = -45.0) -> tuple[list[str], np.ndarray]:
    """The fallback's class per block and a confidence (0..1) for it.

    ``speech``: the fraction of each block inside voice-activity segments.
    """
    classes, conf = [], []
    for db, flat, share, steady, sp in zip(f.rms_db, f.flatness, f.peak_share, f.steadiness, speech):
        if db < silence_db:
            classes.append("silence")
            conf.append(min(1.0, (silence_db - db) / 20 + 0.5))
        elif sp >= 0.5:
            classes.append("speech")
            conf.append(float(sp))
        elif share >= 0.9 and steady >= 0.5:
            classes.append("tone")
            conf.append(float(share))
        elif steady >= 0.5 and flat < 0.2:
            classes.append("music")
            conf.append(float(steady))
        else:
            classes.append("noise")
            conf.append(float(min(1.0, 1.0 - steady)))
    return classes, np.asarray(conf)


def mode_filter(classes: list[str], width: int = 3) -> list[str]:
    """Each block takes the most common class of the ``width`` blocks around it (ties keep its own)."""
    if width <= 1 or len(classes) < width:
        return list(classes)
    half = width // 2
    out = []
    for i, c in enumerate(classes):
        around = classes[max(0, i - half):i + half + 1]
        best = max(set(around), key=lambda k: (around.count(k), k == c))
        out.append(best)
    return out


def runs(classes: list[str]) -> list[tuple[int, int, str]]:
    """(first block, last block + 1, class) of each run of equal classes."""
    out: list[tuple[int, int, str]] = []
    for i, c in enumerate(classes):
        if out and out[-1][2] == c:
            out[-1] = (out[-1][0], i + 1, c)
        else:
            out.append((i, i + 1, c))
    return out


def speech_coverage(times: np.ndarray, hop_s: float, regions: list[tuple[float, float]]) -> np.ndarray:
    """The fraction of each block [t, t + hop_s) covered by the speech regions."""
    cover = np.zeros(times.size)
    for a, b in regions:
        i0 = max(0, int(np.searchsorted(times, a, side="right")) - 1)
        for i in range(i0, times.size):
            t = times[i]
            if t >= b:
                break
            cover[i] += max(0.0, min(b, t + hop_s) - max(a, t)) / hop_s
    return np.minimum(cover, 1.0)


# --- the level envelope and sudden sounds --------------------------------------------------------
def level_envelope(audio: AudioTrack) -> np.ndarray:
    """RMS level (dBFS) per whole 10 ms of the whole track."""
    out = [rms_dbfs(y[:y.size - y.size % ENV_HOP], ENV_HOP) for _, y in audio.chunks(60.0)]
    return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class Onset:
    start: float        # timeline seconds
    end: float
    peak_db: float
    rise_db: float


def sudden_sounds(env: np.ndarray, t0: float, rise_db: float = 15.0, min_db: float = -40.0,
                  context_s: float = 1.0, attack_s: float = 0.05, max_s: float = 3.0) -> list[Onset]:
    """Sounds that jump ``rise_db`` over the median level of the ``context_s`` before them within
    ``attack_s``; each ends when the level falls back within 6 dB of that background (or after ``max_s``)."""
    from scipy.ndimage import median_filter

    frame = ENV_HOP / SR
    if env.size < 3:
        return []
    w = max(3, int(round(context_s / frame)))
    attack = max(1, int(round(attack_s / frame)))
    med = median_filter(env, size=w, mode="nearest")
    # background at frame t: the median of the w frames ending `attack` frames before t
    shift = attack + w // 2
    bg = np.concatenate([np.full(min(shift, env.size), env[0]), med[:max(0, env.size - shift)]])
    before = np.concatenate([np.full(min(attack, env.size), env[0]), env[:max(0, env.size - attack)]])
    hits = np.flatnonzero((env - bg >= rise_db) & (env - before >= 0.6 * rise_db) & (env >= min_db))
    out: list[Onset] = []
    i_end = -1
    max_frames = int(round(max_s / frame))
    for i in hits:
        if i <= i_end:
            continue
        base = bg[i]
        j = i
        while j + 1 < env.size and j - i < max_frames and env[j + 1] > base + 6.0:
            j += 1
        peak = float(env[i:j + 1].max())
        out.append(Onset(round(t0 + i * frame, 3), round(t0 + (j + 1) * frame, 3), round(peak, 1),
                         round(peak - float(base), 1)))
        i_end = j
    return out


def onset_kind(y: np.ndarray, duration: float) -> str:
    """The fallback's name for a sudden sound: ``beep`` (one strong partial), ``impact`` (short and
    broadband) or ``burst`` (longer and broadband)."""
    p = _frames_power(y)
    if len(p) == 0:
        return "impact"
    flat, share, _ = _spectral(p)
    if float(np.median(share)) >= 0.7:
        return "beep"
    return "impact" if duration <= 0.5 else "burst"


# --- AudioSet label groups and the AST classifier --------------------------------------------------
SPEECH_WORDS = ("speech", "conversation", "narration", "babbling", "whispering", "speaking")
TONE_LABELS = ("Sine wave", "Beep, bleep", "Dial tone", "Busy signal", "Tuning fork")


def label_groups(labels: list[str]) -> dict[str, np.ndarray]:
    """Indices of AudioSet labels in each class: ``speech``, ``music``, ``tone``, ``noise`` (the rest).

    With the full AudioSet ontology order (index 137 is "Music"), indices 137-282 (instruments,
    genres and music moods) are music; otherwise a label is music when its name says so.
    """
    n = len(labels)
    low = [lab.lower() for lab in labels]
    speech = {i for i, lab in enumerate(low) if any(w in lab for w in SPEECH_WORDS)}
    if n >= 283 and labels[137] == "Music":
        music = set(range(137, 283))
    else:
        music = {i for i, lab in enumerate(low) if "music" in lab or "instrument" in lab}
    tone = {i for i, lab in enumerate(labels) if lab in TONE_LABELS}
    silence = {i for i, lab in enumerate(labels) if lab == "Silence"}
    noise = set(range(n)) - speech - music - tone - silence
    return {k: np.array(sorted(v), dtype=int) for k, v in
            (("speech", speech), ("music", music), ("tone", tone), ("noise", noise))}


class ASTClassifier:
    """An AudioSet classifier (``AutoModelForAudioClassification``) and its feature extractor,
    loaded from a local folder; ``scores`` gives sigmoid probabilities per clip."""

    def __init__(self, path: Path, device: str, precision: str | None):
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        from .._vision.common import dtype_of, pick_precision, torch_device

        device = torch_device(device)
        self.torch, self.device = torch, torch.device(device)
        self.dtype = dtype_of(pick_precision(precision, device, who="AudioSet classifier"))
        self.extractor = AutoFeatureExtractor.from_pretrained(path)
        self.model = AutoModelForAudioClassification.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.groups = label_groups(self.labels)

    def features(self, clips: list[np.ndarray]) -> Any:
        return self.extractor(clips, sampling_rate=SR, return_tensors="pt")

    def scores(self, batch: Any) -> np.ndarray:
        torch = self.torch
        inputs = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                  for k, v in batch.items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        return logits.float().sigmoid().cpu().numpy()

    def group_scores(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Per clip, the highest label probability within each class."""
        return {k: (scores[:, idx].max(axis=1) if idx.size else np.zeros(len(scores)))
                for k, idx in self.groups.items()}

    def top_labels(self, scores: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(scores)[::-1][:k]
        return [(self.labels[i], round(float(scores[i]), 3)) for i in order]


#: the classifiers loaded in this process, by folder, device and precision, while an analyzer holds one
_LOADED: "weakref.WeakValueDictionary[tuple[str, str, str | None], ASTClassifier]" = weakref.WeakValueDictionary()
_LOADING = threading.Lock()
_SAID_MISSING: set[str] = set()  # models whose absence this process has logged


def load_ast(models: dict[str, Path], model_id: str, device: str, precision: str | None) -> ASTClassifier | None:
    """The AudioSet classifier when the runner handed its folder over, else None (feature fallback).

    audio_environment and sound_effects use the same model: in one process they share one classifier
    (one folder, device and precision; read-only weights) while either holds it, so the second load
    costs nothing (on an H200 it took 0.5 s of the load turns before the VLM's, and 170 MB)."""
    path = models.get(model_id)
    if path is None:
        if model_id not in _SAID_MISSING:  # (said once: both analyzers would say it)
            _SAID_MISSING.add(model_id)
            logger.info("%s is not cached: using the feature-based fallback (framework models pull %s)",
                        model_id, model_id)
        return None
    from .._vision.common import torch_device

    key = (str(Path(path).resolve()), str(torch_device(device)), precision)
    with _LOADING:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        try:
            loaded = ASTClassifier(Path(path), device, precision)
        except (OSError, ValueError) as exc:  # AnalyzerUnavailable (a RuntimeError) passes through
            raise AnalyzerUnavailable(f"{model_id} at {path} does not load ({exc}); "
                                      f"framework models pull {model_id}") from exc
        _LOADED[key] = loaded
        return loaded


class AudioSetAnalyzer(BatchedAnalyzer):
    """Base of ``audio_environment`` and ``sound_effects``: the AudioSet classifier (``model_id``)
    when it is pulled and ``use_model`` is on, else ``self.ast`` is None and the feature fallback
    runs (the subclass's ``items`` are then empty). Subclasses read their clips in ``preprocess``."""

    warm_imports = ("transformers.modeling_utils",
                    "transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer",
                    "transformers.models.audio_spectrogram_transformer.feature_extraction_audio_spectrogram_transformer")

    class Params(BatchedAnalyzer.Params):
        model_id: str = Field("ast-audioset", description="Manifest id of the AudioSet classifier.")
        use_model: bool = Field(True, description="False: always the feature fallback.")

    def model_ids(self) -> list[str]:
        return [self.params.model_id] if self.params.use_model else []

    def load(self, device: str, models: dict[str, Path]) -> None:
        self.ast: ASTClassifier | None = (load_ast(models, self.params.model_id, device, self.precision)
                                          if self.params.use_model else None)

    def unload(self) -> None:
        self.ast = None
        self._audio = None

    def forward(self, batch: Any) -> np.ndarray:
        return self.ast.scores(batch)

    def postprocess(self, outputs: np.ndarray, items: list[Any]) -> list[np.ndarray]:
        return list(outputs)
