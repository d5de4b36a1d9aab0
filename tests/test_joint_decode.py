"""``framework.generation.joint_decode``: a batch prefilled in groups of similar prompt length and then
decoded as one batch gives the tokens of one ``generate`` over the whole batch (tiny Qwen-VL models on the
CPU, their decoding steps through the graph seam as on CUDA)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from analyzers.vlm.families import family_class
from analyzers.vlm.families.base import GenerationOptions, Request
from framework.generation import joint_decode
from vlm_fixtures import tiny_vlm  # noqa: F401  (a fixture)

from graph_fixtures import RunAtReplay

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _padding(lengths, parts):
    return sum(max((lengths[i] for i in p), default=0) * len(p) for p in parts)


@pytest.mark.parametrize("lengths,most", [([5, 1, 9, 9, 2, 7, 3], 3), ([4] * 5, 2), ([3, 8], 1), ([6, 2, 6], 8),
                                           ([10, 1, 1, 1, 9, 9, 2], 4), ([], 3)])
def test_groups_cover_every_row_in_as_few_groups_as_fit_with_the_least_padding(lengths, most):
    parts = joint_decode.groups(lengths, most)
    assert sorted(i for p in parts for i in p) == list(range(len(lengths)))
    assert len(parts) == -(-len(lengths) // most) and all(len(p) <= most for p in parts)
    # the least padding of any cut of the sorted rows into that many groups (brute force)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    best = min((_padding(lengths, [order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)))])
                for cuts in itertools.combinations(range(1, len(order)), max(0, len(parts) - 1))
                if all(b - a <= most for a, b in zip((0, *cuts), (*cuts, len(order))))), default=0)
    assert _padding(lengths, parts) == best


@pytest.mark.parametrize("group_tokens", [0, 3, 10, 1000])
@pytest.mark.parametrize("lengths,most", [([5, 1, 9, 9, 2, 7, 3], 3), ([4] * 5, 2), ([3, 8], 1), ([6, 2, 6], 8),
                                           ([10, 1, 1, 1, 9, 9, 2], 4), ([], 3)])
def test_groups_by_cost_are_the_cut_whose_padded_tokens_plus_a_cost_a_group_are_least(lengths, most, group_tokens):
    parts = joint_decode.groups(lengths, most, group_tokens)
    assert sorted(i for p in parts for i in p) == list(range(len(lengths))) and all(0 < len(p) <= most for p in parts)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    assert [i for p in parts for i in p] == order  # (consecutive runs of the sorted rows)
    # the least cost of any cut of the sorted rows into any number of groups (brute force)
    best = min((_padding(lengths, [order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)))]) + group_tokens * (len(cuts) + 1)
                for k in range(len(order)) for cuts in itertools.combinations(range(1, len(order)), k)
                if all(b - a <= most for a, b in zip((0, *cuts), (*cuts, len(order))))), default=0)
    assert _padding(lengths, parts) + group_tokens * len(parts) == best
    if group_tokens == 1000:  # a group costs more than any padding: the fewest groups, as without a cost
        assert _padding(lengths, parts) == _padding(lengths, joint_decode.groups(lengths, most))
        assert len(parts) == len(joint_decode.groups(lengths, most))


def test_groups_by_cost_pad_a_clip_cut_every_4_to_16_s_far_less_than_the_fewest_groups():
    """The end-to-end bench's clip (shots of 4-16 s, 2 fps, 144 tokens a pair of frames, about 60 of text): 91
    chunks in at most 64 rows a group. The fewest groups (two) pad 17 % of the tokens; at a cost of 1,500 tokens
    a group (about what one more prefill costs on an H200) the cut pads less than 5 %, in more groups."""
    counts = {636: 9, 780: 9, 924: 24, 1068: 25, 1212: 16, 1500: 8}
    lengths = [n for n, k in counts.items() for _ in range(k)]
    fewest = joint_decode.groups(lengths, 64)
    by_cost = joint_decode.groups(lengths, 64, 1500)
    assert len(fewest) == 2 and _padding(lengths, fewest) - sum(lengths) > 0.16 * sum(lengths)
    assert len(by_cost) > 2 and _padding(lengths, by_cost) - sum(lengths) < 0.05 * sum(lengths)


def _requests():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (8, 56, 100, 3), dtype=np.uint8)
    counts = [2, 8, 4, 2, 6, 8, 4]  # prompts of 69-123 tokens
    return [Request(i, float(i), i + 1.0, [i + 0.25 * k for k in range(c)], frames[:c],
                    "Describe." if i % 2 else "Describe the scene in detail please.") for i, c in enumerate(counts)]


def _generate(folder, family, prefill_rows=None, graphs=True, new_tokens=12, group_rows=None, group_tokens=None,
              **generation):
    """One batch of the 7 requests: plain ``generate`` (no graphs), or through greedy_loop (the graph seam)
    with ``prefill_rows`` (and the analyzer's ``group_rows``, if given)."""
    fam = family_class(family)(GenerationOptions(max_new_tokens=new_tokens, min_new_tokens=0, static_cache=True,
                                                 prefill_rows=prefill_rows, prefill_group_tokens=group_tokens))
    fam.group_rows = group_rows
    fam.load(folder, "cpu", None)
    for key, value in generation.items():
        setattr(fam.model.generation_config, key, value)
    if graphs:
        fam.graphs = RunAtReplay(fam.model.forward, fam.notes, unused=fam.decode_unused)
        fam.model.forward = fam.graphs
        fam._loop_ok = True
        # (loaded on the CPU, without graphs, the family noted that prefill_rows would not apply: the seam makes it)
        fam.notes[:] = [n for n in fam.notes if not n.startswith("prefill_rows: only")]
    prepared = fam.prepare(_requests())
    return fam, prepared, fam.generate(prepared)


@pytest.fixture(scope="module")
def plain(tiny_vlm):  # noqa: F811
    return {kind: _generate(tiny_vlm(kind), family, graphs=False)[2]
            for kind, family in (("qwen2-vl", "qwen2_vl"), ("qwen2.5-vl", "qwen2_5_vl"))}


@pytest.mark.parametrize("kind,family", [("qwen2-vl", "qwen2_vl"), ("qwen2.5-vl", "qwen2_5_vl")])
def test_groups_prefilled_apart_and_decoded_together_give_the_tokens_of_one_generate(
        tiny_vlm, plain, kind, family):  # noqa: F811
    fam, prepared, joint = _generate(tiny_vlm(kind), family, prefill_rows=3)
    assert torch.equal(joint, plain[kind])
    assert fam.notes == [] and fam.joint_batches == 1
    # three prefills of 3, 2 and 2 rows, then one loop: its first step as is, one capture, the rest replayed
    assert fam.graphs.captures == 1 and fam.graphs.replays == 12 - 3 - 1
    assert fam.describe_model()["prefill_rows"] == {"most": 3, "joint_batches": 1, "groups_per_batch": [3]}
    lengths = prepared["inputs"]["attention_mask"].sum(1).tolist()
    assert len(set(lengths)) > 3  # (the groups' prompts differ in length: their caches had to be aligned)
    # each description reports the padding of its own group's prefill, less than the whole batch's
    padding = [a.extra["padding"] for a in fam.decode(joint, prepared)]
    groups = joint_decode.groups(lengths, 3)
    assert sum(padding) == sum(max(lengths[i] for i in g) - lengths[r] for g in groups for r in g)
    assert sum(padding) < sum(max(lengths) - n for n in lengths)


def test_groups_cut_by_cost_decode_together_to_the_tokens_of_one_generate(tiny_vlm, plain):  # noqa: F811
    """``prefill_group_tokens`` 0 (a group costs nothing): a group per prompt length, no padding in any prefill,
    and still the tokens of one ``generate``."""
    fam, prepared, joint = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=3, group_tokens=0)
    assert torch.equal(joint, plain["qwen2-vl"]) and fam.notes == [] and fam.joint_batches == 1
    lengths = prepared["inputs"]["attention_mask"].sum(1).tolist()
    assert fam.describe_model()["prefill_rows"]["groups_per_batch"] == [len(set(lengths))] != [3]
    assert sum(a.extra["padding"] for a in fam.decode(joint, prepared)) == 0


def test_the_analyzers_group_for_the_batch_sets_its_prefill_groups(tiny_vlm, plain):  # noqa: F811
    """``Family.group_rows`` (the analyzer's ``prefill_group_for``, asked with the batch's rows) over ``prefill_rows``:
    7 rows in groups of at most 4, not 3: two prefills, then one loop; the same tokens."""
    asked = []
    fam, prepared, joint = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=3,
                                     group_rows=lambda rows: asked.append(rows) or 4)
    assert torch.equal(joint, plain["qwen2-vl"]) and fam.joint_batches == 1 and set(asked) == {7}
    assert fam.describe_model()["prefill_rows"]["groups_per_batch"] == [2]  # (most 3 alone: 3 groups)
    lengths = prepared["inputs"]["attention_mask"].sum(1).tolist()
    padding = sum(a.extra["padding"] for a in fam.decode(joint, prepared))  # (each row's padding in its group)
    by_groups = {most: sum(max(lengths[i] for i in g) - lengths[r] for g in joint_decode.groups(lengths, most)
                           for r in g) for most in (3, 4)}
    assert padding == by_groups[4] != by_groups[3]
    fam, _, joint = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=3, group_rows=lambda rows: 7)
    assert torch.equal(joint, plain["qwen2-vl"]) and fam.joint_batches == 0  # (7 rows: one prefill)


def test_the_family_marks_each_phase_of_a_joint_batch(tiny_vlm, plain, monkeypatch):  # noqa: F811
    """The checkpoint (on CUDA: the memory allocated and the peak so far) is called after each group's prefill,
    the join and the loop; on the CPU the family records nothing."""
    from analyzers.vlm.families.hf import HFFamily

    fam, _, _ = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=3)
    assert fam.joint_memory == [] and "memory_gb" not in fam.describe_model()["prefill_rows"]
    phases = []
    monkeypatch.setattr(HFFamily, "_memory_marks", lambda self: phases.append)
    fam, _, got = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=3)
    assert torch.equal(got, plain["qwen2-vl"])
    assert phases == ["prefill 1", "prefill 2", "prefill 3", "join", "loop"]


@pytest.mark.parametrize("case", ["repetition penalty", "an end token"])
def test_the_joint_loop_does_what_transformers_does_for_greedy_search(tiny_vlm, case):  # noqa: F811
    folder = tiny_vlm("qwen2-vl")
    settings = {"repetition_penalty": 1.6}
    if case == "an end token":  # a token the model does emit, in row 0 at the 6th new token, is made the end token
        _, prepared, first = _generate(folder, "qwen2_vl", graphs=False)
        settings = {"eos_token_id": int(first[0, prepared["inputs"]["input_ids"].shape[1] + 5])}
    want = _generate(folder, "qwen2_vl", graphs=False, **settings)[2]
    fam, _, got = _generate(folder, "qwen2_vl", prefill_rows=3, **settings)
    assert fam.notes == [] and fam.joint_batches == 1
    assert torch.equal(got, want)


def test_groups_the_join_does_not_know_decode_one_by_one_and_say_why(tiny_vlm, plain, monkeypatch):  # noqa: F811
    why = "a KV cache without layers of key and value tensors"
    monkeypatch.setattr(joint_decode, "join", lambda parts: (None, why))
    fam, _, got = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=3)
    assert torch.equal(got, plain["qwen2-vl"])
    assert fam.notes == ["the groups decoded one by one: a KV cache without layers of key and value tensors"]
    assert fam.graphs.captures == 3  # a loop per group


def _seamed(folder, prefill_rows=3):
    """The tiny Qwen2-VL on the CPU with its decoding steps through the graph seam (as on CUDA)."""
    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=12, min_new_tokens=0, static_cache=True,
                                                     prefill_rows=prefill_rows))
    fam.load(folder, "cpu", None)
    fam.graphs = RunAtReplay(fam.model.forward, fam.notes, unused=fam.decode_unused)
    fam.model.forward = fam.graphs
    fam._loop_ok = True
    fam.notes.clear()
    return fam


def test_a_batch_prepared_group_by_group_gives_the_words_of_one_generate(tiny_vlm):  # noqa: F811
    """``prepare_in_groups``: the first group prepared at once, the others on another thread, each waited for
    only when its prefill comes; the answers (in the rows' order) are those of one plain ``generate``."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tiny_vlm("qwen2-vl")
    fam0, prepared0, whole = _generate(folder, "qwen2_vl", graphs=False)
    want = [(a.text, a.new_tokens, a.prompt_tokens) for a in fam0.decode(whole, prepared0)]
    fam = _seamed(folder)
    asked = []
    with ThreadPoolExecutor(1) as pool:
        def later(requests):
            asked.append(len(requests))
            return pool.submit(fam.prepare, requests)

        prepared = fam.prepare_in_groups(_requests(), later)
        groups = [rows for rows, _ in prepared["groups"]]
        assert len(groups) == 3 and asked == [len(g) for g in groups[1:]]
        assert isinstance(prepared["groups"][0][1], dict)  # the first group: prepared already
        got = fam.decode(fam.generate(prepared), prepared)
    assert [(a.text, a.new_tokens, a.prompt_tokens) for a in got] == want
    assert fam.notes == [] and fam.joint_batches == 1 and fam.graphs.captures == 1
    # each row's padding is that of its own group's preparation
    frames = [len(r.frames) for r in _requests()]
    assert sorted(frames[i] for i in groups[0]) == sorted(frames)[:len(groups[0])]
    assert sum(a.extra["padding"] for a in got) < sum(a.extra["padding"] for a in fam0.decode(whole, prepared0))


def test_groups_prepared_apart_decode_one_by_one_where_the_loop_cannot_join_them(tiny_vlm, monkeypatch):  # noqa: F811
    folder = tiny_vlm("qwen2-vl")
    fam0, prepared0, whole = _generate(folder, "qwen2_vl", graphs=False)
    why = "a KV cache without layers of key and value tensors"
    monkeypatch.setattr(joint_decode, "join", lambda parts: (None, why))
    fam = _seamed(folder)
    from concurrent.futures import Future

    def later(requests):
        done = Future()
        done.set_result(fam.prepare(requests))
        return done

    prepared = fam.prepare_in_groups(_requests(), later)
    got = fam.decode(fam.generate(prepared), prepared)
    assert [a.text for a in got] == [a.text for a in fam0.decode(whole, prepared0)]
    assert fam.notes == [f"the groups decoded one by one: {why}"]
    fam._loop_ok = False  # transformers' loop: the batch is prepared whole
    assert fam.prepare_in_groups(_requests(), later) is None
    assert _seamed(folder, prefill_rows=7).prepare_in_groups(_requests(), later) is None  # 7 rows: one prefill


def test_a_group_whose_preparation_failed_fails_its_batch_and_not_the_loop(tiny_vlm):  # noqa: F811
    from concurrent.futures import Future

    fam = _seamed(tiny_vlm("qwen2-vl"))

    def later(requests):
        failed = Future()
        failed.set_exception(ValueError("a chunk's frames could not be read"))
        return failed

    prepared = fam.prepare_in_groups(_requests(), later)
    with pytest.raises(ValueError, match="could not be read"):
        fam.generate(prepared)
    assert fam._loop_ok and fam.notes == []  # the next batch still decodes in the graphed loop


def test_the_analyzer_prepares_the_later_groups_on_its_own_thread_with_the_familys_lock():
    """``overlap_prepare``: the analyzer hands the family a ``later`` that prepares on a thread of its own
    (under the family's prepare lock, after the batch's own preparation let go of it); unload stops it."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from analyzers.vlm import SceneDescription

    class Family:
        prepare_lock = threading.Lock()
        closed = False

        def __init__(self):
            self.order = []

        def prepare(self, requests):
            assert self.prepare_lock.locked()
            self.order.append("".join(requests))
            return ("prepared", list(requests))

        def prepare_in_groups(self, requests, later):
            return {"groups": [([0], self.prepare(requests[:1])), ([1, 2], later(requests[1:]))]}

        def close(self):
            self.closed = True

    for overlap, want in ((True, ("prepared", ["b", "c"])), (False, None)):
        a = SceneDescription({"overlap_prepare": overlap})
        a.family = family = Family()
        a._requests = lambda items: list(items)
        requests, prepared = a.preprocess(["a", "b", "c"])
        if want is None:
            assert prepared == ("prepared", ["a", "b", "c"])
        else:
            later = prepared["groups"][1][1]
            a.preprocess(["d", "e", "f"])  # the next batch is prepared after this one's later groups
            assert later.done() and later.result() == want
            # even when the thread gets to them late
            slow = ThreadPoolExecutor(1)
            a._preparer = SimpleNamespace(submit=lambda fn: slow.submit(lambda: (time.sleep(0.3), fn())[1]),
                                          shutdown=slow.shutdown)
            a._wait_for_later_groups()
            family.order.clear()
            a.preprocess(["g", "h"])
            a.preprocess(["i", "j"])
            assert family.order == ["g", "h", "i"]
        a.unload()
        assert family.closed and a._preparer is None


def test_a_batch_within_prefill_rows_or_a_family_that_cannot_split_is_prefilled_whole(tiny_vlm, plain):  # noqa: F811
    fam, _, got = _generate(tiny_vlm("qwen2-vl"), "qwen2_vl", prefill_rows=7)
    assert torch.equal(got, plain["qwen2-vl"]) and fam.joint_batches == 0
    smol = family_class("smolvlm")(GenerationOptions(max_new_tokens=4, prefill_rows=2))
    assert smol.split_rows({"input_ids": torch.zeros(3, 5)}, [0, 1]) is None


def test_a_chunk_with_inputs_of_another_shape_is_not_split(tiny_vlm):  # noqa: F811
    fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=4, prefill_rows=2))
    fam.load(tiny_vlm("qwen2-vl"), "cpu", None)
    inputs = dict(fam.prepare(_requests()[:3])["inputs"])
    part = fam.split_rows(inputs, [2, 0])
    width = int(inputs["attention_mask"][[2, 0]].sum(1).max())
    assert part["input_ids"].shape == (2, width)
    assert torch.equal(part["input_ids"], inputs["input_ids"][[2, 0], -width:])
    grid = inputs["video_grid_thw"]
    assert part["pixel_values_videos"].shape[0] == int(grid[2].prod() + grid[0].prod())
    assert fam.split_rows({**inputs, "pixel_values": inputs["pixel_values_videos"]}, [0]) is None  # images too


@pytest.mark.gpu
def test_on_cuda_the_joint_loop_gives_the_tokens_of_plain_generate(tiny_vlm):  # noqa: F811
    """On CUDA, with real graphs: groups prefilled apart and decoded as one give plain ``generate``'s tokens."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    runs = {}
    # "by cost": a group per prompt length (prefill_group_tokens 0), more groups than "joint"'s three
    for way, prefill_rows, group_tokens in (("plain", None, None), ("joint", 3, None), ("by cost", 3, 0)):
        fam = family_class("qwen2_vl")(GenerationOptions(max_new_tokens=12, min_new_tokens=12,
                                                         cuda_graphs=way != "plain", prefill_rows=prefill_rows,
                                                         prefill_group_tokens=group_tokens))
        fam.load(tiny_vlm("qwen2-vl"), "cuda", "fp32")
        runs[way] = fam.generate(fam.prepare(_requests())).cpu()
        if way != "plain":
            graph_notes = [n for n in fam.notes if "copies the key/value heads" not in n]
            assert graph_notes == [] and fam.joint_batches == 1 and fam.graphs.captures == 1, fam.notes
            assert (fam.joint_groups[0] > 3) == (way == "by cost"), fam.joint_groups
    assert torch.equal(runs["joint"], runs["plain"]) and torch.equal(runs["by cost"], runs["plain"])


def test_the_join_refuses_a_step_input_it_does_not_know_and_leaves_the_caches_alone():
    from types import SimpleNamespace

    from framework.generation.greedy_loop import Rule, Started

    def part(rows, prompt):
        layer = SimpleNamespace(keys=torch.ones(rows, 2, prompt + 9, 4), values=torch.ones(rows, 2, prompt + 9, 4))
        inputs = {"input_ids": torch.zeros(rows, 1, dtype=torch.long),
                  "past_key_values": SimpleNamespace(layers=[layer]),
                  "rope_deltas": torch.zeros(rows, 1), "use_cache": True}
        rule = Rule({"input_ids": "token", "rope_deltas": "same"})
        config = SimpleNamespace(max_new_tokens=12)
        return Started(torch.zeros(rows, prompt + 3, dtype=torch.long), prompt, rule, inputs, config, [1], 0), layer

    (a, layer_a), (b, _) = part(2, 10), part(3, 7)
    joined, why = joint_decode.join([a, b])
    assert joined is None and why == "the step's input rope_deltas is not one the join knows"
    assert layer_a.keys.shape == (2, 2, 19, 4)  # untouched: each group can still decode on its own
