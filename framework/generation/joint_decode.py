"""One batch prefilled in groups of similar prompt length, then decoded as one batch.

Why: a VLM's decoding step costs about the same for 114 rows as for 64 (on an H200, Qwen2-VL-7B's
describing of a 10-minute clip: two batches' decoding 3.9-5.5 s, one batch of 114 chunks' 1.9 s), but
one batch of 114 prefilled its prompts padded to the longest: 2.5x the padding, and the prefill took
longer than the decoding saved (``bench/results/end_to_end_h200_ab17.md``, runs 75 and 77). Here each
group of rows, sorted by prompt length, is prefilled on its own (padded only to its own longest prompt),
and then all rows decode together in ``greedy_loop``.

How: each group goes through ``greedy_loop.start`` (transformers' prefill and first two decoding steps,
the rule of the steps learned). The groups' static KV caches are then joined into one whose rows are
aligned at the end of the longest prompt: a shorter group's keys and values move right by the
difference, the columns before them masked. Positions are per row (the model's rotary positions travel
in ``position_ids``), so nothing else moves. Anything this does not know (an input of the steps other
than the tokens, the positions and the attention masks, a cache without layers of key and value
tensors) leaves each group to decode on its own, as separate batches would, and says why.
"""
from __future__ import annotations

from typing import Any, Callable

from . import greedy_loop
from .greedy_loop import Rule, Started, _others, _put, _tensors


def groups(lengths: list[int], most_rows: int, group_tokens: float | None = None) -> list[list[int]]:
    """Rows (indices into ``lengths``, prompt lengths) in groups of at most ``most_rows``, sorted by length.

    ``group_tokens`` None: as few groups as possible, cut where the padded tokens of the prefills are fewest.
    A number: the groups whose prefilled tokens (each row padded to its group's longest) plus ``group_tokens``
    for each group are fewest, so more groups than the fewest where each saves more padding than that: the
    fixed cost of one more prefill (its call and the two decoding steps ``greedy_loop.start`` takes before the
    join) counted in prompt tokens. The end-to-end bench's 10-minute clip (128 shots): 114 chunks of 348-1500
    tokens in the fewest groups of at most 64 (two) padded 31 % on top of the prompts' tokens; at 3000 a group,
    in five, 5.9 % (``bench/prefill_padding.py``)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    srt = [lengths[i] for i in order]
    if group_tokens is None:  # a group dearer than any padding: the fewest groups, then the least padding
        group_tokens = max(srt, default=0) * len(srt) + 1
    n, most_rows = len(srt), max(1, most_rows)
    # cost[j]: the least padded tokens plus group_tokens a group for the first j sorted rows (a group pads to its
    # last); cut[j]: where its last group began
    cost, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - most_rows), j):
            c = cost[i] + srt[j - 1] * (j - i) + group_tokens
            if c < cost[j]:
                cost[j], cut[j] = c, i
    out, j = [], n
    while j > 0:
        out.append(order[cut[j]:j])
        j = cut[j]
    return out[::-1]


def _batch_dim(key: str, x: Any) -> int | None:
    """The dimension of a step input that runs over the rows, for the inputs the join knows."""
    name = key.rsplit(".", 1)[-1]
    if key == "input_ids":
        return 0
    if name == "position_ids":
        return 1 if x.ndim == 3 else 0  # (Qwen-VL's rotary sections: sections x rows x 1)
    if x.ndim == 4:  # an attention mask: rows x heads x queries x keys
        return 0
    return None


def _layers(cache: Any) -> list[Any] | None:
    layers = getattr(cache, "layers", None)
    if not layers or not all(getattr(layer, "keys", None) is not None and getattr(layer, "values", None) is not None
                             and getattr(layer.keys, "ndim", 0) == 4 for layer in layers):
        return None
    return list(layers)


def join(parts: list[Started]) -> tuple[Started | None, str | None]:
    """One started batch of all ``parts``' rows (in order), their caches joined into the first part's
    cache object (the others' tensors are freed); or (None, why not)."""
    import torch

    first = parts[0]
    kinds = first.rule.kinds
    if any(p.rule.kinds != kinds or p.rule.attend != first.rule.attend for p in parts):
        return None, "the groups' steps change differently"
    if any(p.config.max_new_tokens != first.config.max_new_tokens or p.eos != first.eos or p.pad != first.pad
           for p in parts):
        return None, "the groups decode with different settings"
    width = max(p.prompt_len for p in parts)
    shift = [width - p.prompt_len for p in parts]
    # the cache, and every input of the steps: known, and the non-tensor ones the same
    caches = [p.inputs.get("past_key_values") for p in parts]
    layer_lists = [_layers(c) for c in caches]
    if any(ls is None for ls in layer_lists) or len({len(ls) for ls in layer_lists}) != 1:  # type: ignore[arg-type]
        return None, "a KV cache without layers of key and value tensors"
    room = {int(ls[0].keys.shape[2]) - p.prompt_len for p, ls in zip(parts, layer_lists)}  # type: ignore[index]
    if len(room) != 1:
        return None, "the groups' caches are not sized alike"
    columns = width + room.pop()  # the joined cache's
    others = [{k: v for k, v in _others(p.inputs).items() if k != "past_key_values"} for p in parts]
    if any(o.keys() != others[0].keys() or any(o[k] != others[0][k] for k in o) for o in others):
        return None, "a non-tensor input differs between the groups"
    tensors = [_tensors(p.inputs) for p in parts]
    joined: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in first.inputs.items()}
    rule = Rule(dict(kinds), {}, dict(first.rule.attend))
    for key, x in tensors[0].items():
        kind = kinds.get(key)
        if key == "cache_position" and kind == "plus_one":  # (transformers before 5.2x: the cache's column)
            _put(joined, key, x - first.prompt_len + width)
            continue
        dim = _batch_dim(key, x)
        if dim is None:
            return None, f"the step's input {key} is not one the join knows"
        if x.ndim == 4:  # an attention mask over the cache's columns: moved right as the cache, masked before
            if kind == "unmask":
                if any(p.rule.columns[key] - p.prompt_len != first.rule.columns[key] - first.prompt_len for p in parts):
                    return None, f"{key} lets keys through at different columns"
                rule.columns[key] = first.rule.columns[key] - first.prompt_len + width
            masked = False if x.dtype == torch.bool else torch.finfo(x.dtype).min
            pieces = [torch.cat([torch.full((*t[key].shape[:-1], s), masked, dtype=x.dtype, device=x.device), t[key]],
                                dim=-1) for t, s in zip(tensors, shift)]
            _put(joined, key, torch.cat(pieces, dim=dim))
        else:
            _put(joined, key, torch.cat([t[key] for t in tensors], dim=dim))
    if "cache_position" in tensors[0] and kinds.get("cache_position") != "plus_one":
        return None, "the step's input cache_position is not one the join knows"
    # the caches: layer by layer into new tensors (each part's freed as it goes: the peak is one layer more)
    rows = sum(int(p.prefix.shape[0]) for p in parts)
    for index, layer in enumerate(layer_lists[0]):  # type: ignore[union-attr]
        own = [ls[index] for ls in layer_lists]  # type: ignore[index]
        for name in ("keys", "values"):
            x = getattr(layer, name)
            out = x.new_zeros((rows, x.shape[1], columns, x.shape[3]))
            row = 0
            for part_layer, s in zip(own, shift):
                y = getattr(part_layer, name)
                out[row:row + y.shape[0], :, s:s + y.shape[2]] = y
                row += y.shape[0]
                setattr(part_layer, name, y.new_empty((0,) + tuple(y.shape[1:])))
            setattr(layer, name, out)
        for attr, value in (("max_cache_len", columns), ("batch_size", rows),
                            ("max_batch_size", rows)):
            if hasattr(layer, attr):
                setattr(layer, attr, value)
        if getattr(layer, "cumulative_length", None) is not None and hasattr(layer.cumulative_length, "fill_"):
            layer.cumulative_length.fill_(width + greedy_loop.PREFIX_TOKENS - 1)
    for attr, value in (("max_cache_len", columns), ("max_batch_size", rows), ("batch_size", rows)):
        if hasattr(caches[0], attr) and not callable(getattr(caches[0], attr)):
            try:
                setattr(caches[0], attr, value)
            except AttributeError:  # (a read-only property, computed from the layers)
                pass
    joined["past_key_values"] = caches[0]
    # each row's prompt and first tokens, moved right as its cache (the columns before: the row's own first
    # token, so that a repetition penalty's tokens seen stay the row's own)
    prefix = torch.cat([torch.cat([p.prefix[:, :1].expand(-1, s), p.prefix], dim=1) for p, s in zip(parts, shift)])
    return Started(prefix, width, rule, joined, first.config, first.eos, first.pad), None


def generate(model: Any, graphs: Any, parts: list[dict[str, Any] | Callable[[], dict[str, Any]]],
             kw: dict[str, Any], checkpoint: Callable[[str], None] | None = None
             ) -> tuple[list[Any] | None, str | None]:
    """Each of ``parts`` (a group's inputs, or a function that returns them when that group's prefill comes:
    the next group may still be prepared while the one before prefills) prefilled with ``greedy_loop.start``,
    then all decoded as one batch. Returns (each part's sequences, as ``generate`` would for it alone, and a
    note or None: why the parts were decoded one by one instead), or (None, why the loop cannot do this
    decoding). ``checkpoint(phase)`` is called after each group's prefill (``"prefill 1"``...), the join and
    the loop (a caller's account of the device memory at each)."""
    mark = checkpoint or (lambda phase: None)
    started: list[Started] = []
    results: list[Any] = [None] * len(parts)
    parts = list(parts)
    for i, part in enumerate(parts):
        inputs = parts[i] = part() if callable(part) else part
        s, sequences, why = greedy_loop.start(model, graphs, inputs, kw)
        mark(f"prefill {i + 1}")
        if why is not None:
            return None, why
        if s is None:
            results[i] = sequences  # every row ended within the first tokens
        else:
            started.append(s)
    live = [i for i, r in enumerate(results) if r is None]
    if not started:
        return results, None
    together, why = join(started) if len(started) > 1 else (None, None)
    mark("join")
    if together is None:  # each group on its own
        for i, s in zip(live, started):
            results[i] = greedy_loop.finish(graphs, s)
        return results, None if len(started) == 1 else f"the groups decoded one by one: {why}"
    del started  # (the parts' caches: only the joined one is left)
    sequences = greedy_loop.finish(graphs, together)
    mark("loop")
    row = 0
    for i in live:
        n = int(parts[i]["input_ids"].shape[0])
        width = int(parts[i]["input_ids"].shape[1])
        rows = sequences[row:row + n, together.prompt_len - width:]
        new = rows[:, width:]
        results[i] = rows[:, :width + greedy_loop.finished_at(new, together.eos)]
        row += n
    return results, None


__all__ = ["generate", "groups", "join"]
