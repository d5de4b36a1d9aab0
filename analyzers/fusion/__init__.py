"""``fusion``: one trustworthy account of the video, built from every other analyzer's track.

It runs last (``depends_on = ("*",)``) and:

1. aligns every ``ok`` track onto the video's scenes (else shots, else fixed windows);
2. writes one compact digest per scene: time range, VLM description, transcript, objects,
   on-screen text, audio character, camera, emotion, and a generic line for any other track
   (a third-party analyzer shows up with no code change); digests are ranked by salience;
3. writes the summary with the configured LLM backend (registered by hook, so third-party
   backends work): one call when the digests fit ``token_budget``, else map-reduce over chunks
   of scenes with a reconcile step; the plan and its token estimate are logged before any call;
4. checks every time the model wrote against the timeline (snapped to the nearest supporting
   event or dropped, and counted), and cites evidence for each chapter and key moment;
5. with backend ``extractive``, with ``auto`` (the default) when no instruction-tuned summary
   model that fits is cached (``framework.llm.auto``: nothing is downloaded), or when the
   configured backend cannot run here (a missing package, an uncached model, a server that
   refuses, a model folder that fails to load, an LLM that errors mid-way), writes a structured
   extractive summary from the tracks and says so: ``data["llm_fallback_reason"]`` and a note
   in the summary give the reason; with ``auto`` a note says what it chose and why;
6. quotes the VLM's descriptions (tracks providing ``descriptions``): every chapter and key
   moment cites the description events that cover it, and a chapter the LLM wrote no summary
   for quotes one.

Models: ``model`` names a models-manifest id (``model_ids()`` returns it, so the runner resolves
its local folder and hands it to ``load(device, models)``) or a local folder. The backend
loads from that folder and looks nothing up itself; an uncached model is not a skip
(``models_optional``) but an extractive summary that says which ``framework models pull`` fixes it.

Device: ``auto``. With a local summary model the plan places fusion like any model-backed
analyzer (a GPU when one is there and the model fits its budget, else the CPU; ``device: cpu``
in registry.yaml forces the CPU), and a backend with a ``device`` option loads the model where
the plan put it, unless ``backend_options.device`` says otherwise. Without a model (extractive,
a server) there is nothing to place, and fusion runs on the CPU.

The track holds ``data["summary"]`` (``framework.summary.Summary``) and ``data["fusion"]``
(the plan, token counts and digest statistics), plus one ``chapter`` event per chapter and one
``key_moment`` event per key moment.

Tokens: ``Summary.token_budget`` is the most tokens one prompt may use (``token_budget``,
lowered to fit the model's context window with ``max_new_tokens`` to spare). ``tokens_used``
is the largest prompt actually sent (LLM backends, counted with the backend's tokenizer) or the
size of the extractive summary's material (extractive, estimated); both stay within the budget.
``data["fusion"]`` adds the totals over all calls and the estimate made before the first one.

registry.yaml::

    fusion:
      params:
        backend: transformers          # extractive | transformers | openai | a plugin's backend
        model: qwen2.5-1.5b-instruct   # manifest id, org/name repo, or a local folder
        token_budget: 6000             # the most tokens any one prompt may use
        language: en
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, Track
from framework.llm import LLMBackend, LLMError, LLMUnavailable, builtin_backends, estimate_tokens, make_backend
from framework.llm.auto import AUTO, AutoChoice

if TYPE_CHECKING:
    from framework.summary import Summary

    from .grounding import Grounder

# digest, align, grounding, extractive, summarize and framework.summary are imported when fusion
# runs: every run discovers this plugin, and a run without fusion (`--only cut_analysis`) should
# not pay for them

logger = logging.getLogger(__name__)

DEFAULT_LLM = "qwen2.5-1.5b-instruct"


class Fusion(Analyzer):
    """Aligns every track onto scenes and writes a grounded summary (LLM or extractive)."""

    name: ClassVar[str] = "fusion"
    version: ClassVar[str] = "1.1.2"
    description: ClassVar[str] = "aligns every track onto scenes and writes a grounded summary"
    depends_on: ClassVar[tuple[str, ...]] = ("*",)
    provides: ClassVar[tuple[str, ...]] = ("summary",)
    enabled_by_default: ClassVar[bool] = True
    models_optional: ClassVar[bool] = True  # an uncached LLM means an extractive summary, not a skip
    device: ClassVar[str] = "auto"  # a local summary model goes where the plan puts it; none: the CPU
    cpu_always_practical: ClassVar[bool] = True  # without a GPU it runs on the CPU, as it always did
    #: working memory of each prompt a local model generates beside the first in one batch (the map
    #: step's, a merge level's): 7 prompts of up to 5776 tokens peaked at 6.71 GB against 3.42 GB for
    #: one (Qwen2.5-1.5B, bf16, H200; bench/results/gpu_summary_llm_batched.md). The plan sizes the
    #: batch from it, as for the batching analyzers.
    item_vram_mb: ClassVar[float] = 560.0

    class Params(Analyzer.Params):
        backend: str = Field("auto", description="auto (a cached local instruct model that fits, else extractive) | "
                             "extractive (no model) | transformers | openai | a plugin's backend")
        model: str | None = Field(None, description="transformers: a models-manifest id or a local folder; "
                                  "openai: the server's model name")
        base_url: str | None = Field(None, description="openai: the server, e.g. http://127.0.0.1:11434/v1")
        api_key_env: str | None = Field(None, description="openai: environment variable holding the API key")
        backend_options: dict[str, Any] = Field(default_factory=dict, description="any other backend option")
        fallback_to_extractive: bool = Field(True, description="backend unavailable: write an extractive "
                                             "summary and say so (false: the track is skipped)")
        token_budget: int = Field(6000, ge=256, description="most tokens any one prompt may use")
        max_new_tokens: int = Field(768, ge=16, description="length of the final answer")
        chunk_new_tokens: int = Field(320, ge=16, description="length of each map/merge answer")
        scene_tokens: int = Field(160, ge=24, description="cap on one scene's digest")
        map_reduce: bool = Field(True, description="long videos: summarise chunks of scenes, then reconcile "
                                 "(off: one call with the most salient digests)")
        language: str = Field("en", description="language of the summary (LLM backends)")
        temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature (0: greedy)")
        max_chapters: int = Field(12, ge=1, description="most chapters in the summary")
        max_key_moments: int = Field(8, ge=0, description="most key moments in the summary")
        snap_tolerance_s: float = Field(2.0, ge=0.0, description="grounding: how far an LLM's time may be "
                                        "snapped to a supporting event; farther ones are dropped")
        window_s: float = Field(30.0, gt=0, description="unit length when there are neither scenes nor shots")
        auto_max_gb: float | None = Field(6.0, gt=0, description="auto: the largest summary model it may pick "
                                          "(GB of memory; none: any cached one)")

    def __init__(self, params: Any = None):
        super().__init__(params)
        self.backend: LLMBackend | None = None
        self._backend_notes: list[str] = []
        self._models: dict[str, Path] = {}
        self._device: str | None = None  # given by load(): the plan's placement
        self.fallback_reason: str | None = None
        self._auto: AutoChoice | None = None

    @property
    def auto_choice(self) -> AutoChoice | None:
        """With ``backend: auto``, what it resolved to (a cached instruct model, else extractive),
        decided once per instance from the manifest and the local caches (nothing is downloaded)."""
        if self.params.backend != AUTO:
            return None
        if self._auto is None:
            from framework.llm.auto import choose_summary_model
            from framework.models import load_manifest

            try:
                self._auto = choose_summary_model(load_manifest(host=self.host), self.params.auto_max_gb)
            except Exception as exc:  # noqa: BLE001 - a broken manifest must not stop the summary
                self._auto = AutoChoice("extractive", None, f"auto could not read the models manifest ({exc})")
        return self._auto

    @property
    def backend_name(self) -> str:
        """The backend that runs: the configured one, or what ``auto`` resolved to."""
        choice = self.auto_choice
        return choice.backend if choice is not None else self.params.backend

    def max_batch_size(self) -> int:
        """The prompts a local model may generate together: ``backend_options.max_batch``, else the
        transformers backend's default. The plan caps it to the VRAM its placement leaves, and
        ``backend_options`` hands the cap to a backend that takes ``max_batch``."""
        from framework.llm.transformers_backend import DEFAULT_MAX_BATCH

        return int(self.params.backend_options.get("max_batch") or DEFAULT_MAX_BATCH)

    def model_ids(self) -> list[str]:
        """The manifest id of the summary model, for the runner to resolve (none for a folder, a
        server's model name, or a backend that loads no model folder). A plugin's backend is
        looked up in the backends of ``self.host``, the plugin host the registry configured this
        analyzer from; without one, only the built-in backends are known."""
        model = self._configured_model()
        return [model] if model and _is_manifest_id(model) else []

    def local_files(self) -> list[Path]:
        """A summary model given as a local folder: other weights there write another summary."""
        model = self._configured_model()
        local = model is not None and not _is_manifest_id(model) and Path(model).expanduser().is_dir()
        return [Path(model)] if local else []

    def _configured_model(self) -> str | None:
        """The model the configured backend will load from a folder (a manifest id or a path), else None."""
        return self._summary_model(self._backend_table().get(self.backend_name))

    def _backend_table(self, host: Any = None) -> dict[str, type]:
        """Backend name -> class: the host's registered backends, else the built-in ones."""
        return dict(getattr(host or self.host, "llm_backends", None) or builtin_backends())

    # --- the backend -------------------------------------------------------------------
    def _summary_model(self, cls: type | None) -> str | None:
        """The model a backend that loads a folder (``Options.model_path``) will load, else None."""
        fields = getattr(getattr(cls, "Options", None), "model_fields", {})
        if "model_path" not in fields:
            return None
        p = self.params
        if self.auto_choice is not None and self.auto_choice.model:
            return self.auto_choice.model
        default = fields["model"].default if "model" in fields else None
        return p.model or p.backend_options.get("model") or default or DEFAULT_LLM

    def backend_options(self, cls: type | None = None) -> dict[str, Any]:
        """The options for the backend: ``model``/``base_url``/``api_key_env`` and ``backend_options``,
        plus ``model_path``, the folder the runner resolved, for a backend class that takes one."""
        p = self.params
        opts: dict[str, Any] = {}
        if self.auto_choice is not None and self.auto_choice.model:
            opts["model"] = self.auto_choice.model
        elif p.model is not None:
            opts["model"] = p.model
        if p.backend == "openai":
            if p.base_url is not None:
                opts["base_url"] = p.base_url
            if p.api_key_env is not None:
                opts["api_key_env"] = p.api_key_env
        opts = {**opts, **p.backend_options}
        model = self._summary_model(cls)
        if model is not None and not opts.get("model_path") and model in self._models:
            opts["model_path"] = str(self._models[model])
        fields = getattr(getattr(cls, "Options", None), "model_fields", {})
        if "device" in fields and "device" not in opts and self._device is not None:
            opts["device"] = self._device  # where the plan placed this analyzer (and its model)
        cap = self.placement.max_batch if self.placement is not None and self.placement.is_gpu else None
        if "max_batch" in fields and cap is not None:
            opts["max_batch"] = min(int(opts.get("max_batch") or cap), cap)  # what fits the plan's VRAM
        return opts

    def load(self, device: str, models: dict[str, Path]) -> None:
        """Open a built-in backend here (loading its model from the folder in ``models``), so a
        missing model means ``skipped`` when ``fallback_to_extractive`` is off; a plugin's backend
        is opened in ``analyze``."""
        self._models = dict(models or {})
        self._device = "cuda" if device == "gpu" else device
        self._backend_notes, self.fallback_reason = [], None
        if self.backend_name in builtin_backends():
            self.backend = self._open_backend(builtin_backends())

    def _open_backend(self, table: dict[str, type]) -> LLMBackend:
        """The configured backend, loaded; the extractive one (with the reason) when it cannot start."""
        name = self.backend_name
        if self.auto_choice is not None:  # the summary says what auto chose, and why
            self._backend_notes.append(self.auto_choice.reason + ("; this summary is extractive."
                                                                  if name == "extractive" else "."))
        if name == "extractive":
            return make_backend("extractive", {}, table)
        if name not in table:
            try:
                make_backend(name, {}, table)  # raises, listing the registered backends
            except LLMError as exc:
                return self._fall_back(table, str(exc), exc)
        backend = make_backend(name, self.backend_options(table[name]), table)  # bad options: fail
        if self.placement is not None and hasattr(backend, "gpu_to_itself"):
            backend.gpu_to_itself = self.placement.gpu_to_itself  # CUDA graphs only while the GPU is its own
        try:
            backend.load()
            return backend
        except Exception as exc:  # noqa: BLE001 - any load error means an extractive summary, not a failed track
            _close_quietly(backend)
            return self._fall_back(table, describe_backend_error(exc), exc)

    def _fall_back(self, table: dict[str, type], reason: str, exc: Exception) -> LLMBackend:
        p = self.params
        name = self.backend_name
        if not p.fallback_to_extractive:
            if isinstance(exc, (LLMUnavailable, LLMError)):
                raise LLMUnavailable(f"fusion: LLM backend {name} cannot run: {reason}") from exc
            raise exc
        logger.warning("fusion: LLM backend %s cannot run (%s); writing an extractive summary instead",
                       name, reason)
        self.fallback_reason = f"the {name} backend could not start: {reason}"
        self._backend_notes.append(f"The {name} backend could not run ({reason}); this summary is extractive.")
        return make_backend("extractive", {}, table)

    def unload(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    # --- analyze -------------------------------------------------------------------------
    def analyze(self, inputs: AnalyzerInputs) -> Track:
        p = self.params
        notes: list[str] = []
        upstream = {n: t for n, t in inputs.upstream.items() if n != self.name}
        used = sorted(n for n, t in upstream.items() if t.status == "ok")
        for n, t in sorted(upstream.items()):
            if t.status != "ok":
                notes.append(f"Not used: {n} ({t.status}: {t.reason or 'no reason given'}).")
        duration = float(inputs.video.duration or 0.0)
        if duration <= 0:
            ends = [e.end for n in used for e in upstream[n].events[-1:]]
            duration = max(ends, default=0.0)

        if self.backend is None:
            self._backend_notes, self.fallback_reason = [], None
            table = self._backend_table(inputs.host)
            self.backend = self._open_backend(table)
        backend = self.backend
        medium = describe_medium(inputs.video)
        notes.extend(self._backend_notes)
        count = backend.count_tokens if not backend.extractive else estimate_tokens
        tracks = {n: upstream[n] for n in used}
        from .align import build_units
        from .digest import DigestBuilder, score_salience
        from .extractive import write_extractive
        from .grounding import Grounder

        units = build_units(tracks, duration, p.window_s)
        builder = DigestBuilder(tracks, duration, count, p.scene_tokens)
        digests = [builder.build(u) for u in units]
        score_salience(digests)
        grounder = Grounder(builder.indexes, units, duration, p.snap_tolerance_s)
        inputs.report(0.05)

        budget = p.token_budget
        if not backend.extractive:
            window_cap = backend.context_window - p.max_new_tokens
            if window_cap < budget:
                notes.append(f"token_budget {budget} lowered to {window_cap} to fit the model's "
                             f"{backend.context_window}-token context window")
                budget = window_cap
        extractive = write_extractive(digests, builder.indexes, grounder, duration, used, count, budget,
                                      p.max_chapters, p.max_key_moments, medium=medium)
        fusion_data: dict[str, Any] = {
            "backend": {"requested": p.backend, "used": backend.name},
            "units": len(units), "unit_source": units[0].source if units else None,
            "digest_tokens": sum(d.tokens for d in digests), "budget": budget,
            "tracks_used": used, "medium": medium,
        }
        if not backend.extractive and not digests:
            notes.append(f"There was nothing to summarize (no scenes, shots or duration); the {backend.name} "
                         "backend was not called.")
        if backend.extractive or not digests:
            summary = self._extractive_summary(extractive, budget, notes)
            fusion_data.update(mode="extractive", digests_full=extractive.fitted.full,
                               digests_brief=extractive.fitted.brief, digests_left_out=extractive.fitted.dropped)
            logger.info("fusion: %d %ss, %d digest tokens; extractive summary fitted to %d tokens",
                        len(units), units[0].label if units else "unit", fusion_data["digest_tokens"], budget)
        else:
            summary, stats = self._llm_summary(backend, grounder, digests, extractive, duration, used, budget,
                                               notes, inputs, medium)
            fusion_data.update(stats)
        inputs.report(1.0)
        events = [Event(start=c.start, end=c.end, label="chapter", data={"title": c.title}) for c in summary.chapters]
        events += [Event(start=m.time, end=m.end if m.end is not None else m.time, label="key_moment",
                         data={"text": m.text}) for m in summary.key_moments]
        if self.auto_choice is not None:
            fusion_data["auto"] = self.auto_choice.reason
        track = self.track(events=events, data={**summary.to_data(), "fusion": fusion_data,
                                                "llm_fallback_reason": self.fallback_reason})
        if max(fusion_data.get("batch_sizes") or [1]) > 1:  # the runner reads the measured peak's batch from it
            track = track.model_copy(update={"receipt": {**track.receipt,
                                                         "step": {"batch_sizes": fusion_data["batch_sizes"]}}})
        return track

    def _extractive_summary(self, ex: Any, budget: int, notes: list[str]) -> Summary:
        from framework.summary import Grounding, Summary

        p = self.params
        notes = list(notes)
        notes.append("Written without a language model: an extractive summary assembled from the analyzers' tracks.")
        if p.language.lower() not in ("en", "english"):
            notes.append(f"language {p.language!r} needs an LLM backend; the extractive summary is in English.")
        if ex.fitted.dropped or ex.fitted.brief:
            notes.append(f"Detailed summary: {ex.fitted.full} scene digests in full, {ex.fitted.brief} shortened, "
                         f"{ex.fitted.dropped} left out to fit {budget} tokens (ranked by salience).")
        return Summary(title=ex.title, paragraph=ex.paragraph, detailed=ex.detailed, chapters=ex.chapters,
                       key_moments=ex.key_moments, language="en", backend="extractive", model=None,
                       extractive=True, grounding=Grounding(), token_budget=budget, tokens_used=ex.tokens,
                       notes=notes)

    def _llm_summary(self, backend: LLMBackend, grounder: Grounder, digests: list, ex: Any, duration: float,
                     used: list[str], budget: int, notes: list[str], inputs: AnalyzerInputs,
                     medium: str = "video") -> tuple[Summary, dict]:
        from framework.summary import Summary

        p = self.params
        header = f"Analyzers: {', '.join(used) or 'none'}."
        from .summarize import LLMSummarizer

        summarizer = LLMSummarizer(
            backend, grounder, digests, header, duration, budget=budget, max_new_tokens=p.max_new_tokens,
            chunk_new_tokens=p.chunk_new_tokens, language=p.language, temperature=p.temperature,
            max_chapters=p.max_chapters, max_key_moments=p.max_key_moments, map_reduce=p.map_reduce,
            progress=lambda f: inputs.report(0.05 + 0.9 * f), medium=medium)
        plan = summarizer.plan
        logger.info("fusion with %s (%s): %s", backend.name, backend.model_name, plan.describe())
        try:
            fields, parts, was_json = summarizer.run()
        except LLMError as exc:  # the backend failed mid-way (a bug of fusion's own fails the track)
            if not p.fallback_to_extractive:
                raise
            reason = describe_backend_error(exc)
            logger.warning("fusion: LLM call failed (%s); writing an extractive summary instead", reason)
            self.fallback_reason = (f"the {backend.name} backend failed after {summarizer.stats.calls} of "
                                    f"~{plan.est_calls} call(s): {reason}")
            s = self._extractive_summary(ex, budget, notes + [f"The {backend.name} backend failed during the run "
                                                              f"({reason}); this summary is extractive."])
            return s, {"mode": "extractive-fallback", "plan": plan.__dict__, "calls": summarizer.stats.calls}
        notes = notes + summarizer.notes
        if not was_json:
            notes.append("The model's final answer was not JSON; chapters and moments were read from its lines.")
        chapters = grounder.ground_chapters(fields["chapters"])
        # a chapter the model left without a summary quotes the description that covers it
        chapters = [c if c.summary else c.model_copy(update={"summary": grounder.quote(c.start, c.end)})
                    for c in chapters]
        moments = grounder.ground_moments(fields["key_moments"])
        from_llm = {k: bool(fields.get(k)) for k in ("title", "paragraph", "detailed")}
        chapters_src = moments_src = "model"
        if not chapters:
            chunk_chapters = [c for part in parts for c in part.chapters]
            if chunk_chapters:
                chapters, chapters_src = chunk_chapters, "parts"
                notes.append("No final chapter survived grounding; chapters come from the part descriptions.")
            else:
                chapters, chapters_src = ex.chapters, "extractive"
                notes.append("No chapter the model wrote survived grounding; chapters are the extractive ones "
                             "(scene boundaries).")
        if not moments:
            chunk_moments = [m for part in parts for m in part.moments]
            if chunk_moments:
                moments, moments_src = chunk_moments[: p.max_key_moments], "parts"
            else:
                moments, moments_src = ex.key_moments, "extractive"
                notes.append("No key moment the model wrote survived grounding; key moments are extractive.")
        missing = [k for k, ok in from_llm.items() if not ok]
        if missing:
            notes.append(f"The model wrote no usable {', '.join(missing)}; extractive text stands in.")
        llm_parts = [k for k, ok in from_llm.items() if ok]
        g = grounder.stats
        notes.append(f"Written by {backend.name}" + (f" ({backend.model_name})" if backend.model_name else "")
                     + f" in {summarizer.stats.calls} call(s), plan {plan.mode}; grounding: {g.checked} times "
                       f"checked, {g.kept} kept, {g.snapped} snapped, {g.dropped} dropped.")
        summary = Summary(
            title=fields.get("title") or ex.title, paragraph=fields.get("paragraph") or ex.paragraph,
            detailed=fields.get("detailed") or ex.detailed, chapters=chapters, key_moments=moments,
            language=p.language, backend=backend.name, model=backend.model_name,
            extractive=not llm_parts and chapters_src == moments_src == "extractive",
            grounding=g, token_budget=budget, tokens_used=summarizer.stats.max_prompt_tokens, notes=notes)
        stats = {"mode": plan.mode, "chapters_from": chapters_src, "key_moments_from": moments_src, "plan": plan.__dict__, "calls": summarizer.stats.calls,
                 "prompt_tokens": summarizer.stats.prompt_tokens,
                 "completion_tokens": summarizer.stats.completion_tokens,
                 "max_prompt_tokens": summarizer.stats.max_prompt_tokens,
                 "unusable_answers": summarizer.stats.unusable_answers,
                 "merge_calls_per_level": list(summarizer.stats.merge_calls_per_level),
                 "map_calls": summarizer.stats.map_calls, "batch_sizes": list(summarizer.stats.batch_sizes)}
        if getattr(backend, "cuda_graphs", None) is not None:
            stats["cuda_graphs"] = backend.cuda_graphs
        if getattr(backend, "notes", None):
            stats["decoding_notes"] = list(backend.notes)
        return summary, stats


def _is_manifest_id(model: str) -> bool:
    """A name the models manifest could hold: not a path and not an ``org/name`` repo id."""
    if "/" in model or "\\" in model or model.startswith((".", "~")):
        return False
    return not Path(model).expanduser().is_dir()


def _close_quietly(backend: LLMBackend) -> None:
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001 - already falling back; the load error is the news
        logger.debug("fusion: closing backend %s after a failed load raised %s", backend.name, exc)


def describe_backend_error(exc: BaseException) -> str:
    """A one-line reason for a backend that could not start or stopped answering."""
    if isinstance(exc, (LLMUnavailable, LLMError)):
        return str(exc)
    if isinstance(exc, ImportError):
        missing = getattr(exc, "name", None)
        return (f"{type(exc).__name__}: {exc} (install the package that provides "
                f"{missing or 'it'} in the framework's environment)")
    return f"{type(exc).__name__}: {exc}"


def describe_medium(video: Any) -> str:
    """``audio`` for an input with audio and no picture, else ``video``."""
    has_audio = bool(getattr(video, "has_audio", False))
    return "audio" if not getattr(video, "has_video", True) and has_audio else "video"


__all__ = ["Fusion"]
