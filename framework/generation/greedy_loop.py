"""Greedy decoding whose whole step is one CUDA graph: the forward, the choice of the token, and the
next step's inputs, with no Python between steps.

Why: with each forward replayed as a graph (``decode_graphs``), Qwen2-VL-7B's decoding step at a
batch of 60 chunks on an H200 still took about 19 ms, while the GPU's own work is a few
milliseconds: the rest is transformers' loop around the forward (the next inputs, the attention
mask, the logits processors, the stopping check), run in Python at every step.

How, without re-implementing any model's inputs:

1. transformers' ``generate`` prefills and takes two decoding steps itself (a stopping criterion
   ends it after three new tokens; its static KV cache is sized for all of them). ``DecodeGraphs``
   records the inputs of those two steps.
2. From the first step's inputs to the second's, every input must change by a rule learned here:
   the new token; unchanged; one more (positions); or one more key column let through (the 4-D
   attention masks). The rule is applied to the first step and must give exactly the second; if
   any input changes otherwise, this model keeps transformers' loop (and the note says why).
3. The loop: one step is the forward, the logits processing transformers would do for greedy
   search (repetition penalty, no end token before ``min_new_tokens``, padding after a row's end),
   the argmax, and the rule applied in place to the inputs; on CUDA it is captured once and
   replayed for every remaining token. Every 16 steps the host checks whether all rows ended.

Only greedy search whose processors are those above takes this path (``eligible`` says why not);
the rest keeps transformers' loop. The captured step goes through the same gate as
``decode_graphs`` (nothing else on the GPU); when the GPU is shared the steps run as is.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .decode_graphs import is_tensor, static_copy

#: new tokens transformers generates before the loop takes over (two decoding steps to learn from)
PREFIX_TOKENS = 3
#: the host checks every this many steps whether every row has ended
CHECK_EVERY = 16

# greedy-search settings of a generation config that this loop does not implement: any of them set
# (to other than its neutral value) keeps transformers' own loop
_NEUTRAL = {"num_beams": (None, 1), "do_sample": (None, False), "no_repeat_ngram_size": (None, 0),
            "encoder_repetition_penalty": (None, 1.0), "encoder_no_repeat_ngram_size": (None, 0),
            "bad_words_ids": (None,), "sequence_bias": (None,), "suppress_tokens": (None,),
            "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
            "exponential_decay_length_penalty": (None,), "guidance_scale": (None, 1.0),
            "watermarking_config": (None,), "min_length": (None, 0), "stop_strings": (None,),
            "max_time": (None,), "renormalize_logits": (None, False), "epsilon_cutoff": (None, 0.0),
            "num_return_sequences": (None, 1), "assistant_model": (None,), "prompt_lookup_num_tokens": (None,)}


def effective_config(model: Any, kw: dict[str, Any]) -> Any:
    """The model's generation config with ``generate``'s keyword arguments applied."""
    config = copy.deepcopy(model.generation_config)
    config.update(**{k: v for k, v in kw.items() if k not in ("cache_implementation", "disable_compile")})
    return config


def eligible(config: Any) -> str | None:
    """None when this loop can do ``config``'s decoding; else why not."""
    for name, neutral in _NEUTRAL.items():
        if getattr(config, name, None) not in neutral:
            return f"{name}={getattr(config, name)!r}"
    if (config.max_new_tokens or 0) <= PREFIX_TOKENS + 1:
        return "too few new tokens"
    return None


def stop_after(length: int) -> Any:
    """``generate``'s ``stopping_criteria``: every row stops once sequences are ``length`` tokens long."""
    import torch
    import transformers

    class StopAfter(transformers.StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = input_ids.shape[1] >= length
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return transformers.StoppingCriteriaList([StopAfter()])


# --- the rule --------------------------------------------------------------------------------------
@dataclass
class Rule:
    """How each input of a decoding step becomes the next step's (keys: ``key`` or ``key.sub``)."""

    kinds: dict[str, str] = field(default_factory=dict)  # "token" | "same" | "plus_one" | "unmask"
    columns: dict[str, int] = field(default_factory=dict)  # "unmask": the column the second step let through
    attend: dict[str, Any] = field(default_factory=dict)   # "unmask": the value that lets a key through


def _tensors(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The step's tensors by key (``key``, or ``key.sub`` inside a dict such as the masks)."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, dict):
            out.update({f"{key}.{sub}": v for sub, v in value.items() if is_tensor(v)})
        elif is_tensor(value):
            out[key] = value
    return out


def _put(kwargs: dict[str, Any], key: str, value: Any) -> None:
    """Set the tensor ``_tensors`` named ``key``."""
    top, _, sub = key.partition(".")
    if sub:
        kwargs[top][sub] = value
    else:
        kwargs[top] = value


def _others(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if not isinstance(v, dict) and not is_tensor(v)}


def learn(first: dict[str, Any], second: dict[str, Any], token: Any) -> Rule | str:
    """The rule taking ``first`` to ``second`` (``token``: the token fed in the second step), or
    why there is none."""
    import torch

    a, b = _tensors(first), _tensors(second)
    if a.keys() != b.keys() or "input_ids" not in a:
        return f"the inputs differ between steps ({sorted(a.keys() ^ b.keys())})"
    oa, ob = _others(first), _others(second)
    if oa.keys() != ob.keys() or any(oa[k] is not ob[k] and oa[k] != ob[k] for k in oa):
        return "a non-tensor input changes between steps"
    rule = Rule()
    for key, x in a.items():
        y = b[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            return f"{key} changes shape"
        if key == "input_ids":
            if not torch.equal(y, token.view_as(y).to(y.dtype)):
                return "input_ids is not the new token"
            rule.kinds[key] = "token"
        elif torch.equal(x, y):
            rule.kinds[key] = "same"
        elif not x.is_floating_point() and x.dtype != torch.bool and torch.equal(y, x + 1):
            rule.kinds[key] = "plus_one"
        elif x.ndim == 4:
            changed = (x != y).flatten(0, -2).any(0).nonzero().flatten()
            if changed.numel() != 1:
                return f"{key} changes in {changed.numel()} columns"
            col = int(changed[0])
            values = y[..., col].unique()
            if values.numel() != 1 or not torch.equal(y[..., col], torch.full_like(y[..., col], values[0])):
                return f"{key}'s new column is not the same for every row"
            rule.kinds[key], rule.columns[key], rule.attend[key] = "unmask", col, values[0].item()
        else:
            return f"{key} changes in a way the loop does not know"
    return rule


def advance(rule: Rule, kwargs: dict[str, Any], token: Any, step: int) -> dict[str, Any]:
    """A copy of step ``step``'s inputs (1: the step the rule was learned from) moved on to the next
    step's (``token``: the token fed there)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()}
    for key, x in _tensors(kwargs).items():
        kind = rule.kinds[key]
        if kind == "token":
            y = token.view_as(x).to(x.dtype)
        elif kind == "same":
            y = x
        elif kind == "plus_one":
            y = x + 1
        else:
            y = x.clone()
            y[..., rule.columns[key] + step - 1] = rule.attend[key]
        _put(out, key, y)
    return out


def same_inputs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two steps' inputs are equal, tensor for tensor."""
    import torch

    ta, tb = _tensors(a), _tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


# --- the loop --------------------------------------------------------------------------------------
class GreedyLoop:
    """One batch's remaining tokens, each step replayed from one graph (or run as is)."""

    def __init__(self, forward: Callable[..., Any], rule: Rule, inputs: dict[str, Any], *, prefix: Any,
                 prompt_len: int, steps: int, eos: list[int], pad: int, min_new_tokens: int,
                 repetition_penalty: float | None):
        import torch

        self.forward, self.rule, self.steps = forward, rule, steps
        self.buffers = static_copy(inputs)  # the step's own copies, moved on in place
        self._by_key = _tensors(self.buffers)
        dev = prefix.device
        self.eos = torch.tensor(eos, device=dev, dtype=torch.long)
        self.pad, self.min_new = pad, min_new_tokens
        self.penalty = repetition_penalty if repetition_penalty not in (None, 1.0) else None
        new = prefix[:, prompt_len:]
        self.finished = torch.isin(new, self.eos).any(1)
        self.count = torch.tensor(new.shape[1], device=dev)
        self.t = torch.zeros(1, dtype=torch.long, device=dev)
        self.history = torch.full((prefix.shape[0], steps), pad, dtype=torch.long, device=dev)
        # the loop starts at step 3; it lets through the column after step 3's
        self.columns = {k: torch.tensor([c + 2], device=dev) for k, c in rule.columns.items()}
        self.prefix = prefix
        self.seen = None  # repetition penalty: the tokens so far, per row (sized at the first step)

    def step(self) -> None:
        """One token: the forward, greedy choice, and the next inputs, all on the device."""
        import torch

        logits = self.forward(**self.buffers).logits[:, -1, :].float()
        if self.penalty is not None:
            if self.seen is None:  # the first step, run as is before any capture: the tokens so far
                self.seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, self.prefix, True)
            penalized = torch.where(logits < 0, logits * self.penalty, logits / self.penalty)
            logits = torch.where(self.seen, penalized, logits)
        if self.min_new:
            blocked = (self.count < self.min_new).expand(logits.shape[0], self.eos.numel())
            logits[:, self.eos] = torch.where(blocked, torch.full_like(logits[:, self.eos], float("-inf")),
                                              logits[:, self.eos])
        token = logits.argmax(-1)
        token = torch.where(self.finished, torch.full_like(token, self.pad), token)
        self.finished |= torch.isin(token, self.eos)
        self.history.index_copy_(1, self.t, token[:, None])
        self.t += 1
        self.count += 1
        if self.seen is not None:
            self.seen.scatter_(1, token[:, None], True)
        for key, kind in self.rule.kinds.items():
            x = self._by_key[key]
            if kind == "token":
                x.copy_(token.view_as(x))
            elif kind == "plus_one":
                x.add_(1)
            elif kind == "unmask":  # (after the last step the column is past the cache: never read)
                x.index_fill_(-1, self.columns[key].clamp(max=x.shape[-1] - 1), self.rule.attend[key])
                self.columns[key].add_(1)


@dataclass
class Started:
    """A batch after transformers' prefill and first two decoding steps: what the loop goes on from."""

    prefix: Any  # the prompts and the first PREFIX_TOKENS new tokens (rows x (prompt_len + 3))
    prompt_len: int
    rule: Rule
    inputs: dict[str, Any]  # the third decoding step's inputs
    config: Any
    eos: list[int]
    pad: int


def start(model: Any, graphs: Any, inputs: dict[str, Any], kw: dict[str, Any]) -> tuple[Started | None, Any, str | None]:
    """Prefill ``inputs`` and take the first decoding steps in transformers' ``generate`` (``graphs``: the
    ``DecodeGraphs`` in front of the model's forward, recording them), and learn the rule of the steps.
    Returns (what the loop goes on from, None, None); (None, the sequences, None) when every row ended
    within the first tokens; or (None, None, why the loop cannot do this model's decoding)."""
    config = effective_config(model, kw)
    why = eligible(config)
    if why is not None:
        return None, None, why
    n_prompt = int(inputs["input_ids"].shape[1])
    started = time.perf_counter()
    with graphs.recording() as steps:  # transformers prefills and takes two decoding steps
        prefix = model.generate(**inputs, **kw, stopping_criteria=stop_after(n_prompt + PREFIX_TOKENS))
    if prefix.shape[1] < n_prompt + PREFIX_TOKENS:
        return None, prefix, None  # every row ended within the first tokens
    tok2, tok3 = prefix[:, n_prompt + 1], prefix[:, n_prompt + 2]
    rule = learn(steps[0], steps[1], tok2) if len(steps) == 2 else f"{len(steps)} steps seen"
    if isinstance(rule, str):
        return None, None, rule
    if not same_inputs(advance(rule, steps[0], tok2, 1), steps[1]):
        return None, None, "the rule learned does not give the second step's inputs"
    eos = config.eos_token_id
    eos = [] if eos is None else [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]
    pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else 0)
    graphs.prefill_s += time.perf_counter() - started  # (same_inputs read the device: the prefill is done)
    return Started(prefix, n_prompt, rule, advance(rule, steps[1], tok3, 2), config, eos, int(pad)), None, None


def finish(graphs: Any, s: Started) -> Any:
    """The remaining tokens of a started batch in the loop (each step replayed from one graph where
    ``graphs`` may capture); the sequences as ``generate`` returns them."""
    import torch

    looping = time.perf_counter()
    loop = GreedyLoop(graphs.forward, s.rule, s.inputs, prefix=s.prefix, prompt_len=s.prompt_len,
                      steps=s.config.max_new_tokens - PREFIX_TOKENS, eos=s.eos, pad=s.pad,
                      min_new_tokens=s.config.min_new_tokens or 0, repetition_penalty=s.config.repetition_penalty)
    done, replay = 0, None
    while done < loop.steps:
        if replay is None and graphs.enabled and (done == 1 or (done and done % CHECK_EVERY == 0)):
            replay = graphs.capture_step(loop.step)  # the first step ran as is (a warm-up)
        if replay is not None:
            replay()
            graphs.replays += 1
        else:
            loop.step()
            graphs.shared_steps += int(done > 0 and graphs.enabled)
        done += 1
        if done % CHECK_EVERY == 0 and bool(loop.finished.all()):
            break
    sequences = torch.cat([s.prefix, loop.history[:, :done]], dim=1)
    sequences = sequences[:, :s.prompt_len + finished_at(sequences[:, s.prompt_len:], s.eos)]  # (reads the device)
    graphs.loop_s += time.perf_counter() - looping
    return sequences


def generate(model: Any, graphs: Any, inputs: dict[str, Any], kw: dict[str, Any]) -> tuple[Any, str | None]:
    """``model.generate(**inputs, **kw)`` for greedy search, its steps replayed from one graph
    (``graphs``: the ``DecodeGraphs`` in front of the model's forward). Returns (the sequences,
    None), or (None, why the loop cannot do this model's decoding)."""
    started, sequences, why = start(model, graphs, inputs, kw)
    if started is None:
        return sequences, why
    return finish(graphs, started), None


def generate_or_note(model: Any, graphs: Any, inputs: dict[str, Any], kw: dict[str, Any]) -> tuple[Any, str | None]:
    """``generate``, for a caller that falls back to transformers' loop: (the sequences, None), or
    (None, the note to record) when the loop cannot do this model's decoding or failed on its own.
    Running out of device memory is raised (the caller splits the batch)."""
    return or_note(lambda: generate(model, graphs, inputs, kw))


def or_note(decoding: Callable[[], tuple[Any, str | None]]) -> tuple[Any, str | None]:
    """``decoding()`` (``generate``, ``joint_decode.generate``: (the output or None, a reason)) for a caller
    that falls back to transformers' loop: (the output, its note or None), or (None, the note to record)
    when the loop cannot decode or failed on its own. Running out of device memory is raised (the caller
    splits the batch)."""
    from ..device_step import is_out_of_memory

    try:
        out, why = decoding()
    except Exception as exc:  # noqa: BLE001 - the loop's own failure: transformers' loop does the batch
        if is_out_of_memory(exc):
            raise
        out, why = None, f"the graphed loop failed ({type(exc).__name__}: {str(exc)[:160]})"
    if out is None:
        return None, f"decoding in transformers' loop (each forward still a CUDA graph): {why}"
    return out, why


def finished_at(new_tokens: Any, eos: list[int]) -> int:
    """How many of ``new_tokens``' columns transformers would have returned: up to and including
    the column in which the last row ended (all of them when a row never ends)."""
    import torch

    if not eos:
        return int(new_tokens.shape[1])
    ended = torch.isin(new_tokens, torch.tensor(eos, device=new_tokens.device, dtype=new_tokens.dtype))
    if not bool(ended.any(1).all()):
        return int(new_tokens.shape[1])
    return int(ended.int().argmax(1).max()) + 1


__all__ = ["CHECK_EVERY", "GreedyLoop", "PREFIX_TOKENS", "Rule", "Started", "advance", "effective_config", "eligible",
           "finished_at", "finish", "generate", "generate_or_note", "learn", "or_note", "same_inputs", "start",
           "stop_after"]
