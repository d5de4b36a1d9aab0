"""The device step (framework.device_step): batching, prefetch overlap, OOM splitting, receipts."""
from __future__ import annotations

import threading
import time

import pytest

from framework import AnalyzerInputs, BatchedAnalyzer, DeviceOutOfMemory, VideoMeta
from framework.device_step import StepReceipt, is_out_of_memory, run_batches
from framework.scheduler import Placement


def _inputs() -> AnalyzerInputs:
    return AnalyzerInputs(video=VideoMeta(path="x.mp4", content_hash="x", size_bytes=1, duration=10.0, has_video=True))


class Doubler(BatchedAnalyzer):
    """Stand-in: doubles numbers; ``fits`` is the largest batch its fake device takes."""

    name = "doubler"
    version = "1.0.0"
    device = "gpu"
    batch_size = 4

    def __init__(self, n: int = 10, fits: int = 100, **kw):
        super().__init__()
        self.n, self.fits = n, fits
        self.log: list[tuple[str, int, float]] = []
        self.seen_batches: list[int] = []

    def items(self, inputs):
        return range(self.n)

    def count_items(self, inputs):
        return self.n

    def preprocess(self, items):
        self.log.append(("pre", items[0], time.perf_counter()))
        return list(items)

    def forward(self, batch):
        if len(batch) > self.fits:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.seen_batches.append(len(batch))
        return [2 * x for x in batch]

    def finish(self, results, inputs):
        return self.track(data={"results": results})


def test_results_come_back_in_item_order_in_batches_of_the_configured_size():
    a = Doubler(n=10)
    receipt = StepReceipt()
    assert run_batches(a, _inputs(), receipt) == [2 * i for i in range(10)]
    assert a.seen_batches == [4, 4, 2]
    assert receipt.items == 10 and receipt.batches == 3 and receipt.batch_sizes == [4, 2]


def test_the_batch_shrinks_to_the_smallest_that_needs_no_more_batches():
    """9 items at most 4 a batch: three batches of 3 (not 4, 4, 1); the largest batch is what its working
    memory is sized by (``BatchedAnalyzer.prefill_group_for``)."""
    a = Doubler(n=9)
    assert run_batches(a, _inputs()) == [2 * i for i in range(9)]
    assert a.seen_batches == [3, 3, 3]


def test_items_of_unknown_count_come_in_batches_of_the_configured_size():
    a = Doubler(n=9)
    a.count_items = lambda inputs: None
    assert run_batches(a, _inputs()) == [2 * i for i in range(9)]
    assert a.seen_batches == [4, 4, 1]


def test_after_out_of_memory_a_smaller_batch_keeps_the_plans_prefill_group():
    """The room the plan counted proved too small: the halves are prefilled in the plan's groups (4), not in the
    larger ones a smaller batch would fit in that room, so that they take less memory than the batch that failed."""
    a = Doubler(n=8, fits=4)
    a.batch_size, a.item_vram_mb, a.item_kv_mb = 8, 10.0, 2.0
    a.prefill_group = lambda: 4
    groups = []
    forward = a.forward
    a.forward = lambda batch: groups.append((len(batch), a.prefill_group_for(len(batch), 64))) or forward(batch)
    a.placement = Placement(device="cpu", max_batch=8, prefill_group=4, batch_room_mb=98.0)
    assert a.analyze(_inputs()).data["results"] == [2 * i for i in range(8)]
    assert groups[0] == (8, 64)  # (8 rows fit whole in the room: one prefill), out of memory
    assert groups[1:] == [(4, 4)] * 2 and a.placement.batch_room_mb is None


def test_a_batch_smaller_than_the_plans_largest_is_prefilled_in_larger_groups_where_they_fit():
    """``prefill_group_for``: the plan fitted groups of 4 to a batch of 38 in 98 MB of room (10 MB an item of
    the first group beyond the first item, 2 MB an item beyond that group: 10 x 3 + 2 x 34 = 98); a batch of 20
    fits groups of 8 in that room (10 x 7 + 2 x 12 = 94 MB; 9 would take 102); without a room (no budget):
    the plan's group."""
    a = Doubler()
    a.item_vram_mb, a.item_kv_mb = 10.0, 2.0
    a.prefill_group = lambda: 4
    a.placement = Placement(device="cuda:0", max_batch=38, prefill_group=4, batch_room_mb=98.0)
    assert a.prefill_group_for(20, 64) == 8
    assert a.prefill_group_for(38, 64) == 4 and a.prefill_group_for(3, 64) == 64  # (3 rows: prefilled whole)
    assert a.prefill_group_for(20, 6) == 6  # never above the analyzer's own group
    # the group a batch ran in, for the measured peak at that batch: the last answer for its size, else the plan's
    assert a.prefill_group_for(20, 64) == 8 and a.prefill_group_used(20) == 8 and a.prefill_group_used(21) == 4
    a.placement = Placement(device="cuda:0", max_batch=38, prefill_group=4)
    assert a.prefill_group_for(20, 64) == 4


def test_the_placement_caps_the_batch_size():
    a = Doubler(n=9)
    a.placement = Placement(device="cpu", max_batch=3)
    run_batches(a, _inputs())
    assert a.seen_batches == [3, 3, 3]


def test_out_of_memory_halves_the_batch_and_records_it():
    a = Doubler(n=8, fits=2)
    a.placement = Placement(device="cpu")
    track = a.analyze(_inputs())
    assert track.data["results"] == [2 * i for i in range(8)]
    assert set(a.seen_batches) == {2}
    step = track.receipt["step"]
    assert step["fallbacks"][0].startswith("out of memory at batch 4")
    assert "retried at batch 2" in step["fallbacks"][0]


def test_one_item_that_does_not_fit_raises_to_the_executor():
    a = Doubler(n=3, fits=0)
    with pytest.raises(DeviceOutOfMemory, match="one item does not fit"):
        run_batches(a, _inputs())


def test_other_errors_are_not_mistaken_for_out_of_memory():
    class Broken(Doubler):
        def forward(self, batch):
            raise ValueError("bad shape")

    with pytest.raises(ValueError, match="bad shape"):
        run_batches(Broken(n=3), _inputs())
    assert not is_out_of_memory(ValueError("bad shape"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))


def test_the_next_batch_is_preprocessed_while_the_device_runs():
    """Preprocessing of batch k+1 starts before forward of batch k returns."""
    started_next = threading.Event()

    class Slow(Doubler):
        def preprocess(self, items):
            if items[0] == 4:
                started_next.set()
            return list(items)

        def forward(self, batch):
            if batch[0] == 0:  # the first batch waits until the second is being prepared
                assert started_next.wait(timeout=5), "batch 2 was not preprocessed during batch 1"
            return super().forward(batch)

    assert run_batches(Slow(n=8), _inputs()) == [2 * i for i in range(8)]


def test_progress_is_reported_and_ctrl_c_stops_between_batches():
    a = Doubler(n=40)
    seen: list[float] = []

    def progress(f):
        seen.append(f)
        if f >= 0.3:
            raise KeyboardInterrupt

    inputs = _inputs()
    inputs.progress = progress
    with pytest.raises(KeyboardInterrupt):
        run_batches(a, inputs)
    assert len(a.seen_batches) < 10  # it stopped before running every batch
    assert seen and seen[0] == 0.0


def test_batches_prepared_ahead_are_the_ones_analyze_runs_first():
    """``prepare_ahead`` (the executor calls it while the model loads) starts the first ``prefetch``
    batches' preprocessing; ``analyze`` with the same inputs starts with them instead of preparing
    them again, and its receipt says how many it found."""
    a = Doubler(n=10)
    inputs = _inputs()
    a.prepare_ahead(inputs)
    time.sleep(0.1)
    before = [i for _what, i, _t in a.log]
    assert before == [0, 4]  # the first two batches (prefetch 2), before any analysis
    track = a.analyze(inputs)
    assert track.data["results"] == [2 * i for i in range(10)]
    assert [i for _what, i, _t in a.log] == [0, 4, 8]  # each batch preprocessed once
    assert track.receipt["step"]["prepared_ahead"] == 2
    assert a.analyze(inputs).receipt["step"]["prepared_ahead"] == 0  # (used once)


def test_batches_prepared_for_other_inputs_are_dropped():
    a = Doubler(n=6)
    a.prepare_ahead(_inputs())
    track = a.analyze(_inputs())  # another attempt's inputs
    assert track.data["results"] == [2 * i for i in range(6)]
    assert track.receipt["step"]["prepared_ahead"] == 0
    # the analysis prepared both its batches itself (those prepared for the other inputs, or started, also count)
    assert len([1 for what, _i, _t in a.log if what == "pre"]) >= 2 + 1


def test_dropping_what_was_prepared_waits_for_its_threads():
    started, release = threading.Event(), threading.Event()

    class Slow(Doubler):
        preprocess_threads = 1

        def preprocess(self, items):
            started.set()
            release.wait(5)
            return super().preprocess(items)

    a = Slow(n=8)
    a.prepare_ahead(_inputs())
    assert started.wait(5)
    pool = a._prepared.pre_pool
    threading.Timer(0.2, release.set).start()
    a.drop_prepared()
    assert a._prepared is None and pool._shutdown
    assert len(a.log) == 1  # the batch under way finished; the one queued behind it was cancelled
