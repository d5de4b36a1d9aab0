"""The analyzer contract: the base class every built-in and third-party analyzer subclasses.

An analyzer declares what it needs (frame streams, audio, upstream analyzers, manifest
model ids) and implements ``load`` / ``analyze`` / ``unload``. Importing an analyzer module
must load no model and do no I/O: heavy imports go inside ``load``.

Minimal example::

    from framework import Analyzer, Event, FrameSpec, hookimpl
    from pydantic import BaseModel

    class Brightness(Analyzer):
        name = "brightness"
        version = "1.0.0"

        class Params(Analyzer.Params):
            fps: float = 2.0

        def frame_specs(self):
            return [FrameSpec(fps=self.params.fps, width=64, pix_fmt="gray")]

        def analyze(self, inputs):
            stream = inputs.frames(self.frame_specs()[0])
            values = [float(f.mean()) for _, f in stream]
            return self.track(series=[Series(name="brightness", times=list(stream.times), values=values)])

    @hookimpl
    def register_analyzers(register):
        register(Brightness)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .streams import AudioTrack, FrameSpec, FrameStream
from .timeline import Event, ModelRef, Series, Track, VideoMeta

if TYPE_CHECKING:
    from .scheduler import Placement

DevicePreference = Literal["cpu", "gpu", "auto"]


class AnalyzerUnavailable(RuntimeError):
    """Raised by ``load`` when the analyzer cannot run here (missing package, model or device).

    The runner turns it into a ``skipped`` track with this message, which should say how to fix it.
    """


@dataclass
class AnalyzerInputs:
    """What the runner hands to ``Analyzer.analyze``.

    :ivar video: the probed metadata of the input file.
    :ivar streams: frame streams keyed by ``FrameSpec``, produced in the single decode pass.
    :ivar audio: 16 kHz mono float32 audio, or ``None`` when the file has no audio stream.
    :ivar upstream: finished tracks of the analyzers named in ``depends_on``.
    :ivar work_dir: a private scratch folder in the run folder.
    """

    video: VideoMeta
    streams: dict[FrameSpec, FrameStream] = field(default_factory=dict)
    audio: AudioTrack | None = None
    upstream: dict[str, Track] = field(default_factory=dict)
    work_dir: Path | None = None
    progress: Any = None  # optional callable(fraction: float) for progress bars
    host: Any = None  # the PluginHost: registered LLM backends and exporters (used by fusion)

    def frames(self, spec: FrameSpec) -> FrameStream:
        try:
            return self.streams[spec]
        except KeyError:
            raise KeyError(f"frame stream {spec.key} was not declared in frame_specs()") from None

    def report(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress(min(1.0, max(0.0, fraction)))


def file_stamp(path: Path) -> list[Any]:
    """What identifies a local file's or folder's contents cheaply: its resolved path, and the size and
    modification time of the file, or of each file directly in the folder; ``None`` where it is missing."""
    path = Path(path).expanduser()
    try:
        if path.is_dir():
            files = [(f.name, f.stat()) for f in sorted(path.iterdir()) if f.is_file()]
            return [str(path.resolve()), [[name, st.st_size, st.st_mtime_ns] for name, st in files]]
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None]


class Analyzer:
    """Base class of every analyzer.

    Class attributes to set:

    - ``name``: unique, snake_case; the key in ``registry.yaml``.
    - ``version``: bump it when output changes; part of the result-cache key.
    - ``Params``: a pydantic model (``extra="forbid"``) of the analyzer's parameters.
    - ``depends_on``: names of analyzers whose tracks this one reads (``inputs.upstream``);
      ``("*",)`` means every other enabled analyzer (fusion), and such an analyzer runs last;
      among several, the one that provides ``"summary"`` runs after the others and reads them too.
    - ``needs_audio`` / ``requires_audio``: wants audio / is skipped without it.
    - ``requires_video``: is skipped for audio-only files (default True if it asks for frames).
    - ``device``: ``"cpu"``, ``"gpu"`` or ``"auto"`` (GPU when there is one, else CPU).
    - ``models``: manifest ids of the models it loads. The runner resolves them to local paths
      (``load(device, models)``); an uncached model makes the track ``skipped`` with the
      ``framework models pull`` command, unless ``models_optional`` is True.
    - ``gpu_stream_priority``: ``"high"`` for GPU work made of many small steps that each wait
      for their result (token-by-token decoding with a small model): beside large models on one
      GPU its kernels are started first as the GPU frees up, so each wait stays short. A large
      model's batched work gains nothing from it and would hold the others back. ``"low"``: in a
      process of its own under an MPS server, its process is an MPS client of below-normal priority
      (``CUDA_MPS_CLIENT_PRIORITY=1``): the GPU schedules the other processes' work first; without
      MPS, or in the run's process, it is ``"normal"``.
    - ``cuda_stream_local``: True when, analyzing on a GPU, its CUDA calls wait only for its own
      stream: no ``torch.cuda.synchronize()`` or ``torch.cuda.empty_cache()`` (``unload`` may),
      waits through ``framework.device_step.synchronize`` or a tensor's ``.cpu()``. Another
      analyzer may then capture a CUDA graph on that GPU while it works (``Placement.gpu_to_itself``);
      beside one that leaves it False, captures wait until it has finished.
    - ``own_process``: True for an analyzer whose work is mostly Python: in a run that uses a GPU
      it runs in a child process of its own (``framework.own_process``), so it and the threads
      that feed the GPUs do not wait for each other's turns on the interpreter's lock. A CPU
      analyzer mostly Python, or a GPU analyzer driven by a loop of small steps (Whisper decoding
      token by token; on the GPU its CUDA context is the child's, its allocator capped to its
      share of the budget). It must not use ``host``, and its class must be importable by module
      and name.
    - ``wait_for_video``: True for an analyzer that reads only the audio but should not start
      before the video is decoded too: a CPU-heavy one that nothing on the run's longest path waits
      for, so that the decode keeps the CPUs. False (the default, and every built-in's): it starts
      as soon as the audio is decoded. registry.yaml's ``wait_for_video`` overrides it.
    - ``cpu_priority``: ``"low"`` for a CPU-heavy analyzer that runs in a process of its own and that
      nothing on the run's longest path waits for: its process (and the workers it starts) runs at a
      lower CPU priority (``nice`` 10), so the decode and the analyzers the run waits for get the CPUs
      first when they want them. ``"normal"`` (the default): as the run. No effect on an analyzer that
      runs as a thread of the run's process. registry.yaml's ``cpu_priority`` overrides it.
    - ``load_first``: True for a GPU analyzer whose model's load should take the first load turn
      there is, before the loads of analyzers that could analyze at once (by default those go first:
      ``Executor._load_turn_key``). For the run's longest analysis when its upstream will be done
      about when its load is. False (the default, and every built-in's). registry.yaml's
      ``load_first`` overrides it.
    - ``frames_first``: True for the GPU analyzer whose analysis is the run's longest (the
      description VLM): with ``FRAMEWORK_FRAMES_FIRST=1``, in a run that uses a GPU, the decode
      pass makes its streams and those of its upstream analyzers first, and it starts on them
      while the other streams are decoded (``framework.decode_process``). An experiment: off by default.
    - ``warm_imports``: modules ``load`` imports that take seconds to import (a transformers model's
      module, ``ultralytics``): the run imports them on a thread while the video decodes, and the
      loads begin after (``framework.warm_imports``). A module that fails there is left for ``load``.
    - ``provides``: the capabilities its track offers, so outputs, fusion and other analyzers
      find what they need by what a track *is*, not by an analyzer's name (a third-party cut
      detector providing ``"shots"`` feeds the shot list, cuts.csv/.edl and the per-shot
      analyzers exactly as the built-in ``cut_analysis`` does). ``track()`` stamps it into
      ``Track.provides``; ``framework.tracks_providing(tracks, capability)`` finds them.
      Known capabilities and the events they promise:

      - ``"shots"``: ``shot`` events covering the video, each with ``data["first_frame"]`` and
        ``data["last_frame"]``, the indices (0-based, in decode order at the native rate) of
        the shot's first and last decoded frames.
      - ``"scenes"``: ``scene`` events, each a run of consecutive shots.
      - ``"transcript"``: ``speech`` events whose ``data["text"]`` is what was said.
      - ``"summary"``: a track whose ``data`` holds the fusion ``Summary`` (title, overview,
        chapters, highlights).
      - ``"descriptions"``: events whose ``data["text"]`` describes what is seen.

    Set on instances by the framework: ``host``, the ``PluginHost`` the registry configured the
    analyzer from (what other plugins registered, e.g. LLM backends), or ``None`` when the
    analyzer was built by hand; ``placement`` (``framework.scheduler.Placement``), set before
    ``load``: the device (``"cpu"``, ``"cuda:0"``), the precision variant the plan chose
    (``self.precision``, e.g. ``"bf16"``, ``"int8"``), the models it stands in for smaller ones, and
    the largest batch that fits the VRAM budget. GPU analyzers that batch their work should
    subclass ``framework.BatchedAnalyzer`` (the device step).

    Methods to override: ``frame_specs``, ``model_ids`` (when they depend on params),
    ``local_files`` (files the params name, e.g. custom weights: their changes invalidate resume),
    ``load``, ``analyze`` (required), ``unload``, and ``check_available``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    depends_on: ClassVar[tuple[str, ...]] = ()
    needs_audio: ClassVar[bool] = False
    requires_audio: ClassVar[bool] = False
    requires_video: ClassVar[bool | None] = None
    device: ClassVar[DevicePreference] = "cpu"
    # with device "auto" or "gpu": True runs it on the CPU when no GPU can take it, without the
    # plan's time check (fusion: a summary is always wanted, and it falls back to an extractive one)
    cpu_always_practical: ClassVar[bool] = False
    models: ClassVar[tuple[str, ...]] = ()
    models_optional: ClassVar[bool] = False  # True: run even when a model is not cached
    provides: ClassVar[tuple[str, ...]] = ()  # capabilities: "shots", "scenes", "transcript", ...
    enabled_by_default: ClassVar[bool] = True
    # "high": its GPU work is many small steps that each wait for their result (a small model
    # decoding token by token); on a GPU it shares, its kernels go ahead of the others' queued ones
    # (a CUDA stream of higher priority, ``framework.work_streams``). "low": in a process of its own, an
    # MPS client of below-normal priority (under an MPS server; ``framework.own_process``). "normal" for the rest.
    gpu_stream_priority: ClassVar[Literal["low", "normal", "high"]] = "normal"
    # True: while analyzing on a GPU it waits only for its own CUDA stream (no device-wide
    # synchronize or empty_cache), so another analyzer may capture a CUDA graph beside it
    cuda_stream_local: ClassVar[bool] = False
    # True: an analyzer whose work is mostly Python runs in a child process of its own when the run
    # uses a GPU, so it does not take turns on the interpreter's lock with the GPU analyzers' threads
    # (``framework.own_process``; a GPU analyzer takes its GPU there). It must not need ``host``;
    # params, inputs and its track are pickled across.
    own_process: ClassVar[bool] = False
    # True: though it reads only the audio, it starts when the video is decoded too, not as soon as
    # the audio is, and leaves the CPUs to the decode meanwhile (``Executor``'s ``audio_ready``)
    wait_for_video: ClassVar[bool] = False
    # "low": in a process of its own, it runs at a lower CPU priority (nice 10), it and the workers it starts
    # (``framework.own_process``); "normal": as the run
    cpu_priority: ClassVar[Literal["normal", "low"]] = "normal"
    # True: its model's load takes the first load turn there is, before loads that could analyze now
    # (``Executor._load_turn_key``)
    load_first: ClassVar[bool] = False
    # True: with FRAMEWORK_FRAMES_FIRST=1, its streams and its upstream's are decoded first, and it starts
    # on them while the rest are decoded (``framework.decode_process``)
    frames_first: ClassVar[bool] = False
    # modules its load imports that take long to import (transformers' model code, ultralytics): a
    # run imports them on a thread while the video decodes (``framework.warm_imports``)
    warm_imports: ClassVar[tuple[str, ...]] = ()
    # False: its load may run beside the other analyzers' loads in the run's process, because it imports
    # nothing that imports lazily (transformers does, and does not survive an import from two threads
    # at once); else it waits for its turn (``framework.executor.LoadTurns``), behind a 16 GB model's
    # load and the import warm-up. voice_activity (torch and silero-vad only) waited 9.7-13.3 s there.
    load_takes_turns: ClassVar[bool] = True
    # built-ins ported from the system this framework replaces (seed 004): "active" or "disabled"
    # there; shown in docs/analyzers.md. None for analyzers that system did not have.
    original_status: ClassVar[str | None] = None
    plugin: ClassVar[str | None] = None  # stamped by the host at registration
    host: Any = None  # the PluginHost this analyzer was configured from, when known (its LLM backends...)
    placement: "Placement | None" = None  # where the scheduler put it: device, variant, batch cap

    class Params(BaseModel):
        """Parameters of the analyzer, validated from ``registry.yaml``."""

        # defer_build: the validator is built when the analyzer is first configured, not when its
        # module is imported (plugin discovery imports every analyzer module on each command)
        model_config = ConfigDict(extra="forbid", defer_build=True)

    def __init__(self, params: BaseModel | dict[str, Any] | None = None):
        if params is None:
            params = {}
        if isinstance(params, dict):
            params = self.Params.model_validate(params)
        self.params = params

    @property
    def precision(self) -> str | None:
        """The precision variant the plan chose for the models (``bf16``, ``int8``...), or None."""
        return self.placement.variant if self.placement is not None else None

    # --- declarations ---------------------------------------------------------------
    def frame_specs(self) -> list[FrameSpec]:
        """Frame streams this analyzer reads; all are produced in one decode pass."""
        return []

    def stream_features(self) -> dict[FrameSpec, list[tuple[str, dict[str, Any]]]]:
        """Per-frame work the decode may do for this analyzer, on each segment of a stream as soon as that
        segment is decoded, while the rest of the video still decodes: per stream of ``frame_specs``,
        ``(function, kwargs)`` pairs, ``function`` a ``"module:name"`` the decode imports and calls as
        ``function(frames, **kwargs)`` on the segment's frames (N, H, W[, 3] uint8, read from disk), which
        returns arrays with a row per frame (numpy only: they are saved as ``.npz``).

        ``analyze`` then finds them with ``inputs.frames(spec).features(function, kwargs)``, or None: a
        decode in one pass (a short or small video, one CPU), a stream kept from an older run, a feature
        that failed. It must then compute them itself, and its results must not depend on which way they
        came. A row where a segment began (``framework.streams.PART_STARTS``) saw no frame before it.
        ``cut_analysis`` has its per-frame signals computed so: its cut list, which the VLM and most other
        analyzers wait for, is then ready almost as soon as the video is decoded."""
        return {}

    def model_ids(self) -> list[str]:
        """Manifest ids of the models this analyzer loads with its current params."""
        return list(self.models)

    @property
    def wants_audio(self) -> bool:
        """Whether the decoder should produce audio for it (``requires_audio`` implies it)."""
        return self.needs_audio or self.requires_audio

    @property
    def needs_video(self) -> bool:
        return bool(self.frame_specs()) if self.requires_video is None else self.requires_video

    @classmethod
    def supported_precisions(cls) -> tuple[str, ...] | None:
        """The precision variants ``load`` can honour (``("bf16", "fp16", "fp32")``...), or None:
        every one the manifest lists. The plan offers only these (an int8 variant needs a
        quantization library the analyzer may not have). The runner asks the configured instance,
        so an override may be a plain method when the params decide (``qwen2_vl_temporal``'s
        ``precision: fp8``)."""
        return None

    @classmethod
    def check_available(cls) -> str | None:
        """``None`` if the analyzer can run on this machine, else a reason with a fix."""
        return None

    def params_hash(self) -> str:
        """A hash of the params and of the ``local_files`` they name (part of the resume key)."""
        payload = json.dumps(self.params.model_dump(mode="json"), sort_keys=True)
        files = self.local_files()
        if files:
            payload += "|" + json.dumps([file_stamp(f) for f in files])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def local_files(self) -> list[Path]:
        """Local files or folders named by the params whose contents the results depend on (custom
        weights, an adapter folder). Their sizes and modification times join ``params_hash``, so a
        rerun does not reuse a track made from other contents at the same path. Default: none."""
        return []

    # --- lifecycle --------------------------------------------------------------------
    def load(self, device: str, models: dict[str, Path]) -> None:
        """Load models onto ``device``; ``models`` maps manifest ids to local paths."""

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        """Do the work. Return ``self.track(events=..., series=..., data=...)``."""
        raise NotImplementedError(f"analyzer {self.name!r} does not implement analyze()")

    def unload(self) -> None:
        """Release models and device memory."""

    # --- helpers ----------------------------------------------------------------------
    def track(self, events: list[Event] | None = None, series: list[Series] | None = None,
              data: dict[str, Any] | None = None, models: list[ModelRef] | None = None) -> Track:
        """A ``Track`` stamped with this analyzer's name, version and params."""
        return Track(
            analyzer=self.name, version=self.version,
            params=self.params.model_dump(mode="json"), params_hash=self.params_hash(),
            models=models if models is not None else [ModelRef(id=m) for m in self.model_ids()],
            plugin=self.plugin, provides=list(self.provides),
            events=events or [], series=series or [], data=data or {},
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version}>"
