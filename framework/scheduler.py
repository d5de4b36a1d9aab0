"""Which analyzer runs where, in which variant, and when: ``plan()`` is a pure function.

The plan is the one thing the executor (``framework.executor``) follows:

- every analyzer gets a ``Placement``: the CPU or one GPU (``cuda:0``...), the precision variant
  of its models (the best one that fits the budget: bf16 before fp8 before int8 before int4, or a
  smaller model listed in the manifest), and the largest batch whose working memory fits;
- GPU analyzers are grouped into ordered **waves per device**: the models of one wave are loaded
  together and the sum of their VRAM estimates never exceeds that device's budget; an analyzer
  goes into a wave after the waves of the GPU analyzers it depends on; within a wave the one with
  the longest measured time loads and starts first;
- CPU analyzers run beside the waves, as soon as what they depend on has finished;
- an analyzer that fits in no variant is reported ``unplanned`` with the reason and the variant
  (and budget) that would fit; with no GPU, a GPU analyzer that has a CPU path runs on the CPU
  only when that is practical (its estimated CPU time is within ``cpu_time_limit_s``) or when
  the user asked for the CPU (``device: cpu``); otherwise it is left out, saying why.

Everything here is arithmetic on ``Demand``s: no torch, no I/O, so it is tested with property
tests on simulated devices (tests/test_plan_properties.py).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable

#: a GPU analyzer whose CPU time cannot be estimated is tried on the CPU only if its models are
#: at most this big (a 17 GB VLM on a laptop CPU is not "practical")
UNKNOWN_CPU_TIME_MAX_MB = 4096.0


@dataclass(frozen=True)
class Variant:
    """One way to load an analyzer's models: a precision, possibly with smaller stand-in models.

    :ivar precision: ``bf16``, ``fp16``, ``fp32``, ``int8``, ``int4``, or None (not applicable).
    :ivar vram_mb: weights plus working memory for one item, summed over its models.
    :ivar substitutes: (original id, smaller id) pairs, when this variant swaps in a smaller model.
    """

    precision: str | None
    vram_mb: float
    substitutes: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        swapped = ", ".join(f"{b} for {a}" for a, b in self.substitutes)
        return " ".join(p for p in (self.precision or "", f"({swapped})" if swapped else "") if p) or "default"


@dataclass(frozen=True)
class Demand:
    """What the scheduler needs to know about one analyzer.

    :ivar device: the analyzer's preference after the registry's ``device:`` (``cpu``, ``gpu``, ``auto``).
    :ivar vram_mb: its estimate when it lists no ``variants``.
    :ivar variants: best first (the manifest's precisions, then smaller models).
    :ivar item_vram_mb: extra working memory per batch item beyond the first.
    :ivar max_batch: the batch size it asks for (the plan reserves room for it).
    :ivar stretch_batch: a larger batch it can use where its wave leaves memory nobody reserved (0: none
        beyond ``max_batch``); the plan raises its cap toward it from that spare memory only.
    :ivar group_items: a batch is prefilled this many items at a time and then decoded as one (0: whole):
        an item beyond the first group holds ``item_kv_mb`` (what it keeps: its KV cache), not
        ``item_vram_mb`` (``batch_extra_mb``).
    :ivar item_kv_mb: with ``group_items``, the memory each item keeps for the whole batch.
    :ivar cpu_seconds: estimated CPU time for this video (None: unknown).
    :ivar gpu_seconds: estimated GPU time for this video (None: unknown).
    :ivar forced: no practicality check on the CPU: the user chose ``device`` (registry ``device:
        cpu``), or the analyzer's CPU path is always wanted (``Analyzer.cpu_always_practical``).
    :ivar note: why ``device`` is what it is, when the user's configuration chose it.
    """

    name: str
    device: str = "cpu"
    vram_mb: float = 0.0
    depends_on: tuple[str, ...] = ()
    cpu_fallback: bool = True
    note: str | None = None
    variants: tuple[Variant, ...] = ()
    item_vram_mb: float = 0.0
    max_batch: int = 1
    stretch_batch: int = 0
    group_items: int = 0
    item_kv_mb: float = 0.0
    cpu_seconds: float | None = None
    gpu_seconds: float | None = None
    forced: bool = False

    @property
    def wants_gpu(self) -> bool:
        return self.device == "gpu" or (self.device == "auto" and self.best_vram_mb > 0)

    @property
    def all_variants(self) -> tuple[Variant, ...]:
        return self.variants or (Variant(None, self.vram_mb),)

    @property
    def best_vram_mb(self) -> float:
        return self.all_variants[0].vram_mb

    @property
    def largest_batch(self) -> int:
        """The largest batch it can use: ``max_batch``, or ``stretch_batch`` where larger."""
        return max(self.max_batch, self.stretch_batch)


@dataclass(frozen=True)
class Placement:
    """Where and how one analyzer runs, as the plan decided; set on ``Analyzer.placement`` before ``load``.

    :ivar device: ``"cpu"`` or a torch device such as ``"cuda:0"``.
    :ivar variant: the precision variant of its models the plan chose (``"bf16"``, ``"int8"``,
        ``"int4"``...), or None when the manifest lists none.
    :ivar substitutes: manifest ids replaced by a smaller model that fits (original -> smaller); the
        models handed to ``load`` are keyed by the original ids.
    :ivar max_batch: the largest batch whose working memory fits beside the weights in the budget
        (None: no limit known).
    :ivar vram_mb: the estimate the plan used (weights and working memory).
    :ivar exclusive: the executor runs it alone on its device (after an out-of-memory error): the
        device step then halves batches instead of handing the error back.
    :ivar prefill_group: for a batch prefilled in groups, the most items a group may have (None: the
        analyzer's own ``prefill_group()``; so too where the batch is no larger than one group, prefilled whole).
    """

    device: str = "cpu"
    variant: str | None = None
    substitutes: tuple[tuple[str, str], ...] = ()
    max_batch: int | None = None
    vram_mb: float = 0.0
    exclusive: bool = False
    #: a batch prefilled in groups (``Demand.group_items``): the group the plan counted its memory with, smaller
    #: than the analyzer's own where the room beside the weights leaves no whole group (``fitted_group``)
    prefill_group: int | None = None
    #: a batching analyzer's room in a wave with a budget: the MB beyond its weights and first item its batches
    #: may take (its reservation and its share of the memory nobody reserved; None: no budget). A batch smaller
    #: than ``max_batch`` (``BatchedAnalyzer.prefill_group_for``) fits larger prefill groups in it
    batch_room_mb: float | None = None
    #: set by the executor: whether other models are loaded on the same device right now
    shared: Callable[[], bool] | None = field(default=None, compare=False, repr=False)
    #: set by the executor: told each (start, end) the device spent inside ``forward``
    on_busy: Callable[[float, float], None] | None = field(default=None, compare=False, repr=False)
    #: set by the executor on a GPU with a budget: the MB this analyzer's allocator may hold when it
    #: runs in a process of its own (``framework.own_process``): the budget less what the others on
    #: the device had reserved when it was admitted (None: no cap)
    memory_cap_mb: float | None = field(default=None, compare=False)
    #: set by the executor: a context manager for work that must not overlap other analyzers' CUDA
    #: calls in this process (capturing a CUDA graph: another thread's synchronize would break it).
    #: It yields whether no other analyzer on the device is loading or analyzing (models loaded
    #: ahead and idle do not count); while inside, none is admitted or starts there.
    gpu_to_itself: Callable[[], ContextManager[bool]] | None = field(default=None, compare=False, repr=False)

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass
class Wave:
    """GPU analyzers loaded together on one device, within its budget; CPU ones that may run beside."""

    device: str = "cuda:0"
    index: int = 0
    gpu: list[str] = field(default_factory=list)
    cpu: list[str] = field(default_factory=list)
    vram_mb: float = 0.0


@dataclass
class Plan:
    """The schedule: placements, waves per device, and what will not run, each with its reason."""

    order: list[str]
    placements: dict[str, Placement]
    waves: list[Wave]
    budgets: dict[str, float | None] = field(default_factory=dict)  # per GPU, MB (None: unknown)
    notes: dict[str, str] = field(default_factory=dict)
    unplanned: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float | None] = field(default_factory=dict)  # estimated run time per analyzer

    @property
    def device(self) -> dict[str, str]:
        """Analyzer -> ``cpu`` or ``cuda:N``."""
        return {n: p.device for n, p in self.placements.items()}

    def lanes(self) -> dict[str, list[str]]:
        """Per GPU, its analyzers in the order the executor admits and loads them: wave by wave, and
        within a wave the longest estimated run first (the critical path starts soonest; analyzers
        with no estimate keep their order, after those with one)."""
        lanes: dict[str, list[str]] = {}
        for wave in sorted(self.waves, key=lambda w: (w.index, w.device)):
            lanes.setdefault(wave.device, []).extend(wave.gpu)
        return lanes

    def as_dict(self) -> dict:
        """JSON-ready: what ``framework plan --json`` prints and ``results.json`` records."""
        return {
            "order": self.order,
            "budgets_mb": self.budgets,
            "analyzers": {n: {"device": p.device, "variant": p.variant, "vram_mb": round(p.vram_mb, 1),
                              "max_batch": p.max_batch, "prefill_group": p.prefill_group,
                              "batch_room_mb": _round(p.batch_room_mb),
                              "substitutes": dict(p.substitutes),
                              "est_seconds": _round(self.seconds.get(n)), "note": self.notes.get(n)}
                          for n, p in self.placements.items()},
            "waves": [{"device": w.device, "index": w.index, "gpu": w.gpu, "cpu": w.cpu,
                       "vram_mb": round(w.vram_mb, 1)} for w in self.waves],
            "unplanned": self.unplanned,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


class CycleError(ValueError):
    pass


def resolve_device(preferred: str, configured: str | None, source: str = "registry.yaml") -> tuple[str, str | None]:
    """The device to plan an analyzer for, from its class's preference and the registry's ``device:``.

    ``auto`` in the registry keeps the analyzer's own preference; ``cpu`` always wins (a GPU
    analyzer runs on the CPU); ``gpu`` applies to analyzers that can use a GPU, not to CPU-only ones.

    :param preferred: the analyzer class's ``device`` (``cpu``, ``gpu`` or ``auto``).
    :param configured: the registry's ``device`` for it (``None`` or ``auto``: no preference).
    :returns: the device and, when the configuration changed it, a note saying why.
    """
    if configured in (None, "auto") or configured == preferred:
        return preferred, None
    if configured == "cpu":
        return "cpu", f"device: cpu in {source}: running on the CPU"
    if preferred == "cpu":
        return "cpu", f"device: {configured} in {source} ignored: this analyzer runs only on the CPU"
    return "gpu", f"device: gpu in {source}"


def topological_order(deps: dict[str, Iterable[str]]) -> list[str]:
    """Names ordered so every analyzer follows the ones it depends on (stable by input order)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise CycleError("analyzer dependency cycle: " + " -> ".join(chain + (name,)))
        state[name] = 1
        for dep in deps.get(name, ()):
            if dep in deps:
                visit(dep, chain + (name,))
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name, ())
    return order


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gib|gb|g|mib|mb|m)?\s*$", re.IGNORECASE)


def parse_budget(text: str | float | None) -> float | str | None:
    """``--vram-budget``: ``12GB``, ``12``, ``12.5GiB``, ``800MB`` -> MB; ``auto`` -> ``"auto"``; None -> None.

    Plain numbers are GiB (as ``vram_budget_gb`` in registry.yaml). GB and GiB are both read as
    GiB, the unit GPU tools show.

    :raises ValueError: with what was wrong and an example.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)):
        if text <= 0:
            raise ValueError(f"VRAM budget must be above 0, got {text}")
        return float(text) * 1024
    if text.strip().lower() == "auto":
        return "auto"
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"cannot read VRAM budget {text!r}: give a size such as 12GB, 800MB, or auto")
    value, unit = float(m.group(1)), (m.group(2) or "gb").lower()
    mb = value if unit.startswith("m") else value * 1024
    if mb <= 0:
        raise ValueError(f"VRAM budget must be above 0, got {text!r}")
    return mb


def plan(demands: list[Demand], budget_mb: float | dict[str, float | None] | None,
         devices: list[str] | int, *, cpu_time_limit_s: float | None = None) -> Plan:
    """Place every analyzer and group GPU work into waves per device under the budget.

    :param demands: one per analyzer to run; ``depends_on`` names outside the list are ignored.
    :param budget_mb: VRAM the loaded models may sum to, per GPU: one number for every GPU, a
        mapping device -> MB, or None (unknown: GPU analyzers are loaded one at a time per GPU).
    :param devices: the GPUs to use (``["cuda:0", "cuda:1"]``), or their number; ``[]``/0: none.
    :param cpu_time_limit_s: a GPU analyzer with a CPU path runs on the CPU (when there is no
        GPU or it fits no GPU) only if its estimated CPU time is within this; None: no limit.
    """
    gpus = [f"cuda:{i}" for i in range(devices)] if isinstance(devices, int) else list(devices)
    budgets: dict[str, float | None] = (dict(budget_mb) if isinstance(budget_mb, dict)
                                        else {g: budget_mb for g in gpus})
    for g in gpus:
        budgets.setdefault(g, None)
    by_name = {d.name: d for d in demands}
    asked = dict(by_name)  # (by_name's batching demands get the prefill group that fits them best)
    order = topological_order({d.name: d.depends_on for d in demands})
    largest = max((b for b in budgets.values() if b is not None), default=None)
    placements: dict[str, Placement] = {}
    notes: dict[str, str] = {}
    unplanned: dict[str, str] = {}
    seconds: dict[str, float | None] = {}
    chosen: dict[str, Variant] = {}

    for name in order:
        d = by_name[name]
        if not d.wants_gpu:
            placements[name] = Placement("cpu")
            seconds[name] = d.cpu_seconds
            if d.note:
                notes[name] = d.note
            continue
        if gpus:
            fits = [v for v in d.all_variants if largest is None or v.vram_mb <= largest]
            if fits:
                chosen[name] = fits[0]
                seconds[name] = d.gpu_seconds
                note = [d.note] if d.note else []
                if largest is not None:  # (its reservation: the group that fits it best alone on a GPU)
                    by_name[name] = fitted(d, largest - fits[0].vram_mb)
                if fits[0] != d.all_variants[0]:
                    note.append(f"{d.all_variants[0].label} needs ~{d.all_variants[0].vram_mb:.0f} MB, "
                                f"over the {largest:.0f} MB budget: using {fits[0].label} "
                                f"(~{fits[0].vram_mb:.0f} MB)")
                if note:
                    notes[name] = "; ".join(note)
                continue
            smallest = min(d.all_variants, key=lambda v: v.vram_mb)
            why = (f"needs ~{smallest.vram_mb:.0f} MB VRAM even as {smallest.label}, over the {largest:.0f} MB "
                   f"budget (it would fit with --vram-budget {_gb_ceil(smallest.vram_mb)}GB)")
        else:
            # an `auto` analyzer prefers a GPU and runs on the CPU as well
            why = "no GPU here" if d.device == "auto" else "needs a GPU and none is available"
        # no GPU, or no variant fits one: the CPU, if it has a CPU path and that is practical
        if not d.cpu_fallback:
            unplanned[name] = why
            continue
        practical, how_long = _cpu_practical(d, cpu_time_limit_s)
        if not (practical or d.forced):
            unplanned[name] = f"{why}; on the CPU it {how_long} (set `device: cpu` for it in registry.yaml to run it anyway)"
            continue
        placements[name] = Placement("cpu", variant=_cpu_precision(d))
        seconds[name] = d.cpu_seconds
        notes[name] = "; ".join(p for p in (d.note, f"{why}: running on the CPU ({how_long})") if p)

    # each batching analyzer reserves room for the batch it wants (or the largest that fits alone):
    # co-loading small models must not starve the big one of its batch
    need = {n: _reservation(by_name[n], chosen[n], largest) for n in chosen}
    on_gpus = [n for n in order if n in chosen]
    waves = _waves(on_gpus, by_name, need, gpus, budgets)
    # ... unless half of each batch would save a whole wave: one more batch of the big one costs less than
    # every other analyzer of the GPU waiting for it (or it for them), as the default set at 48 GB did
    half = {n: _reservation(by_name[n], chosen[n], largest, share=0.5) for n in chosen}
    if half != need:
        fewer = _waves(on_gpus, by_name, half, gpus, budgets)
        if len(fewer) < len(waves):
            for n in chosen:
                if half[n] < need[n]:
                    notes[n] = "; ".join(x for x in (notes.get(n), (
                        f"reserves half its batch, so that the GPU analyzers run in {_waves_words(len(fewer))}, not "
                        f"{_waves_words(len(waves))}; its batch grows into what its wave leaves")) if x)
            need, waves = half, fewer
    for w in waves:  # the longest (measured) first: loads take turns, so they also start first
        w.gpu.sort(key=lambda n: -(seconds.get(n) or 0.0))
    wave_of = {n: w for w in waves for n in w.gpu}
    for w in waves:  # batch caps: the reservation plus a share of what the wave leaves spare
        budget = budgets[w.device]
        room = {n: need[n] - chosen[n].vram_mb for n in w.gpu if by_name[n].item_vram_mb > 0}
        wanted = {n: max(0.0, batch_extra_mb(by_name[n], by_name[n].largest_batch) - r) for n, r in room.items()}
        shares = spare_shares(wanted, max(0.0, budget - w.vram_mb)) if budget is not None else {}
        for n in w.gpu:
            d, v = by_name[n], chosen[n]
            cap = batch_room = None
            if n in room:
                batch_room = None if budget is None else room[n] + shares[n]
                # the prefill group that fits best in the room it has in this wave (``fitted_group``)
                d = fitted(asked[n], batch_room)
                if d.group_items != asked[n].group_items:
                    notes[n] = "; ".join(x for x in (notes.get(n), (
                        f"prefilled in groups of {d.group_items} items, not {asked[n].group_items}: smaller groups "
                        "leave room for a larger batch beside the weights (a smaller batch, larger groups)")) if x)
                cap = batch_cap(d, batch_room)
                reserved = batch_cap(d, room[n]) if budget is not None else d.max_batch
                if cap > max(d.max_batch, reserved):
                    stretched = (f"a batch of up to {cap} (reserves {reserved}; the rest from memory no "
                                 "analyzer reserved)")
                    notes[n] = "; ".join(x for x in (notes.get(n), stretched) if x)
            # (a batch no larger than one group is prefilled whole: no group to report; the 7B's batch of 2 at 12 GB)
            grouped = _grouped(d) and (cap is None or cap > d.group_items)
            placements[n] = Placement(w.device, v.precision, v.substitutes, cap, need[n],
                                      prefill_group=d.group_items if grouped else None,
                                      batch_room_mb=batch_room)
    for name in order:  # CPU analyzers, listed beside the wave after their GPU dependencies
        if name in placements and not placements[name].is_gpu:
            gpu_deps = [wave_of[p] for p in _ancestors(name, by_name) if p in wave_of]
            if gpu_deps:
                last = max(gpu_deps, key=lambda w: w.index)
                last.cpu.append(name)
            elif waves:
                waves[0].cpu.append(name)
    ordered = [n for n in order if n in placements]
    placements = {n: placements[n] for n in ordered}
    return Plan(order=ordered, placements=placements, waves=waves, budgets=budgets, notes=notes,
                unplanned=unplanned, seconds=seconds)


def without_precision(d: Demand, precision: str) -> Demand:
    """``d`` without its ``precision`` variants, unless they are all it has (the user asked for it)."""
    kept = tuple(v for v in d.variants if v.precision != precision)
    return d if not kept or len(kept) == len(d.variants) else dataclasses.replace(d, variants=kept)


def _grouped(d: Demand) -> bool:
    """Whether ``d``'s batches are prefilled in groups, an item beyond the first group holding only its KV."""
    return d.group_items > 0 and 0 < d.item_kv_mb < d.item_vram_mb


def batch_extra_mb(d: Demand, batch: int) -> float:
    """A batch's working memory beyond the weights and its first item: ``item_vram_mb`` for each other
    item, or, for a batch prefilled in groups (``Demand.group_items``), for each other item of one group
    and ``item_kv_mb`` for each item beyond it (the groups' prefills come one after another, the rows of
    those done keeping their KV: on an H200 Qwen2-VL-7B's 114 chunks in groups of 64 peaked 25.7 GB over
    its weights, where 600 MB an item would have said 67.8 GB)."""
    batch = max(1, batch)
    if not _grouped(d) or batch <= d.group_items:
        return d.item_vram_mb * (batch - 1)
    return d.item_vram_mb * (d.group_items - 1) + d.item_kv_mb * (batch - d.group_items)


#: the smallest prefill group ``fitted_group`` gives: each group's prefill also takes a decoder's first steps
#: outside the graphed loop (``greedy_loop.start``), which groups of a row or two would repeat for every row
MIN_PREFILL_GROUP = 4


def fitted_group(d: Demand, room_mb: float | None) -> int:
    """The prefill group for a batch prefilled in groups with ``room_mb`` beside the weights: of
    ``d.group_items`` and the smaller groups down to ``MIN_PREFILL_GROUP``, the one that gives the largest
    batch (``batch_cap``; the largest such group where several do). A smaller group leaves more room for the
    items that only keep their KV: Qwen2-VL-7B in bf16 on a 24 GB GPU fits no group of 64 chunks (600 MB
    each) beside its 17 GB, but groups of 4 and some 35 chunks that keep 150 MB each; beside other models on
    an 80 GB GPU, groups of 64 gave it 71 chunks where smaller ones give the 128 it can use. Where the demand
    is not grouped, or the room is unknown: ``d.group_items``."""
    if not _grouped(d) or room_mb is None:
        return d.group_items
    best, most = d.group_items, batch_cap(d, room_mb)
    for group in range(d.group_items - 1, MIN_PREFILL_GROUP - 1, -1):
        batch = batch_cap(dataclasses.replace(d, group_items=group), room_mb)
        if batch > most:  # (a group that does not fit itself gives no more than the others)
            best, most = group, batch
    return best


def group_for_batch(d: Demand, room_mb: float | None, batch: int) -> int:
    """The prefill group for one batch of ``batch`` items with ``room_mb`` beside the weights: the largest of
    ``d.group_items`` and the smaller groups down to ``MIN_PREFILL_GROUP`` whose working memory
    (``batch_extra_mb``) fits, as fewer groups prefill sooner (on an H200 the 7B's 60 chunks prefilled in 6.6 s
    in groups of 4, in 4.6 s as one). The plan fits the group to its largest batch (``fitted_group``); a smaller
    one, such as evened-out batches (``even_batch``) or a run's last, has room for larger groups. Where none
    fits, or the demand is not grouped, or the room is unknown: ``fitted_group``'s."""
    if _grouped(d) and room_mb is not None:
        for group in range(d.group_items, MIN_PREFILL_GROUP - 1, -1):
            if batch_extra_mb(dataclasses.replace(d, group_items=group), batch) <= room_mb:
                return group
    return fitted_group(d, room_mb)


def even_batch(size: int, items: int) -> int:
    """The smallest batch size that works ``items`` through in as few batches as ``size`` does (60 chunks at
    most 38 a batch: 30 and 30, not 38 and 22; 9 at most 4: 3, 3, 3): a smaller largest batch, which leaves
    room for larger prefill groups (``group_for_batch``)."""
    if items < 1 or size < 1:
        return max(1, size)
    batches = -(-items // size)
    return -(-items // batches)


def fitted(d: Demand, room_mb: float | None) -> Demand:
    """``d`` with ``fitted_group``'s prefill group for ``room_mb`` beside its weights."""
    group = fitted_group(d, room_mb)
    return d if group == d.group_items else dataclasses.replace(d, group_items=group)


def batch_cap(d: Demand, room_mb: float | None) -> int:
    """The largest batch of a batching analyzer whose working memory beyond the weights and the first item
    (``batch_extra_mb``) fits ``room_mb``: at least 1, at most the largest batch it can use
    (``Demand.largest_batch``); the batch it asks for when the room is unknown (``None``: no budget)."""
    if room_mb is None:
        return d.max_batch
    cap = 1 + int(room_mb // d.item_vram_mb)
    if _grouped(d) and cap >= d.group_items:  # (the whole first group fits: the items beyond keep only their KV)
        cap = d.group_items + int((room_mb - d.item_vram_mb * (d.group_items - 1)) // d.item_kv_mb)
    return max(1, min(d.largest_batch, cap))


def spare_shares(wanted: dict[str, float], spare_mb: float) -> dict[str, float]:
    """``spare_mb`` (a wave's memory nobody reserved) shared among analyzers that want ``wanted`` MB more
    each: equal shares, and what one cannot use (it wants less) shared among the others."""
    shares: dict[str, float] = {}
    left = spare_mb
    ordered = sorted(wanted, key=lambda n: wanted[n])
    for i, name in enumerate(ordered):
        shares[name] = min(wanted[name], left / (len(ordered) - i))
        left -= shares[name]
    return shares


def _gb_ceil(mb: float) -> int:
    return int(-(-mb // 1024))


def _cpu_practical(d: Demand, limit_s: float | None) -> tuple[bool, str]:
    if d.cpu_seconds is not None:
        how = f"would take about {_duration(d.cpu_seconds)}"
        return (limit_s is None or d.cpu_seconds <= limit_s), how
    weights = min(v.vram_mb for v in d.all_variants)
    if weights <= UNKNOWN_CPU_TIME_MAX_MB:
        return True, "time not yet measured"
    return False, f"has no time estimate and its models need ~{weights:.0f} MB"


def _cpu_precision(d: Demand) -> str | None:
    precisions = [v.precision for v in d.all_variants]
    return "fp32" if "fp32" in precisions else ("bf16" if "bf16" in precisions else None)


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def _ancestors(name: str, by_name: dict[str, Demand]) -> set[str]:
    seen: set[str] = set()
    stack = list(by_name[name].depends_on)
    while stack:
        p = stack.pop()
        if p in by_name and p not in seen:
            seen.add(p)
            stack.extend(by_name[p].depends_on)
    return seen


def _waves_words(n: int) -> str:
    return "one wave" if n == 1 else f"{n} waves"


def _reservation(d: Demand, v: Variant, budget: float | None, share: float = 1.0) -> float:
    """What an analyzer reserves in its wave: weights and one item, plus its wanted batch's working
    memory (``batch_extra_mb``), for as large a part of that batch as fits in ``budget`` beside the weights
    (``share`` of that batch, at least one item, counted in the smallest prefill groups: the wave's batch cap
    fits the group to the room it gets)."""
    if d.item_vram_mb <= 0 or d.max_batch <= 1:
        return v.vram_mb
    batch = d.max_batch if budget is None else min(d.max_batch, batch_cap(d, max(0.0, budget - v.vram_mb)))
    if share < 1 and _grouped(d):
        d = dataclasses.replace(d, group_items=min(d.group_items, MIN_PREFILL_GROUP))
    return v.vram_mb + batch_extra_mb(d, max(1, int(batch * share)))


def _waves(names: list[str], by_name: dict[str, Demand], needs: dict[str, float], gpus: list[str],
           budgets: dict[str, float | None]) -> list[Wave]:
    """Each GPU analyzer joins the earliest wave after its GPU ancestors' waves, on the device
    with the least memory planned in that wave that still has room (first fit, balanced)."""
    grid: dict[tuple[int, str], Wave] = {}
    wave_index: dict[str, int] = {}
    for name in names:
        need = needs[name]
        earliest = max((wave_index[p] + 1 for p in _ancestors(name, by_name) if p in wave_index), default=0)
        w = earliest
        while True:
            candidates = []
            for g in gpus:
                wave = grid.get((w, g))
                used = wave.vram_mb if wave else 0.0
                budget = budgets[g]
                room = (not wave or not wave.gpu) if budget is None else used + need <= budget
                if room and (budget is None or need <= budget):
                    candidates.append((used, gpus.index(g), g))
            if candidates:
                _used, _i, g = min(candidates)
                wave = grid.setdefault((w, g), Wave(device=g, index=w))
                wave.gpu.append(name)
                wave.vram_mb += need
                wave_index[name] = w
                break
            w += 1
    return [grid[k] for k in sorted(grid)]
