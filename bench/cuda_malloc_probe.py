"""What a fresh CUDA allocation costs here: PyTorch's caching allocator asks the driver for memory
(``cudaMalloc``) when no cached block fits, and frees it (``empty_cache``) only when asked.

The description VLM's static KV cache is allocated lazily, one tensor per layer and per keys/values
(56 tensors of about 100 MB for 57 chunks of Qwen2-VL-7B), inside its prefill; under a profile of the
end-to-end run its thread sat in ``StaticLayer.lazy_initialization`` for several seconds. This probe
times the same allocations three ways on an idle GPU, so the cost of the driver's allocation can be
read apart from the GPU's work:

- ``fresh``: nothing cached, every tensor a new allocation from the driver;
- ``cached``: the same sizes again after they were freed (the allocator reuses its blocks);
- ``reserved``: after one block of the total size was allocated and freed (the allocator splits it).

Prints a markdown table: way, tensors, MB each, total ms, ms per tensor.

example: python bench/cuda_malloc_probe.py --tensors 56 --mb 102
"""
from __future__ import annotations

import argparse
import logging
import time

logger = logging.getLogger("cuda_malloc_probe")


def timed_allocations(torch, n: int, nbytes: int, zero: bool) -> float:
    """Seconds to allocate ``n`` tensors of ``nbytes`` (zeroed or not) and synchronize; they are freed after."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    make = torch.zeros if zero else torch.empty
    held = [make(nbytes, dtype=torch.uint8, device="cuda") for _ in range(n)]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    del held
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/cuda_malloc_probe.py --tensors 56 --mb 102")
    ap.add_argument("--tensors", type=int, default=56, help="tensors per round (a 7B's layers x keys/values)")
    ap.add_argument("--mb", type=float, default=102.0, help="MB of each tensor")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    if not torch.cuda.is_available():
        logger.error("needs CUDA")
        return 2
    nbytes = int(args.mb * 2**20)
    torch.zeros(1, device="cuda")  # the context
    rows = []
    for r in range(args.rounds):
        for zero in (False, True):
            torch.cuda.empty_cache()
            t0 = time.perf_counter()
            fresh = timed_allocations(torch, args.tensors, nbytes, zero)
            cached = timed_allocations(torch, args.tensors, nbytes, zero)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            torch.cuda.empty_cache()
            freed = time.perf_counter() - t1
            block = torch.empty(args.tensors * nbytes, dtype=torch.uint8, device="cuda")
            del block
            reserved = timed_allocations(torch, args.tensors, nbytes, zero)
            torch.cuda.empty_cache()
            what = "zeros" if zero else "empty"
            rows += [(r + 1, what, "fresh", fresh), (r + 1, what, "cached", cached), (r + 1, what, "reserved", reserved),
                     (r + 1, what, "empty_cache (free them)", freed)]
            logger.info("round %d %s done in %.2f s", r + 1, what, time.perf_counter() - t0)
    print("| round | tensor | way | tensors | MB each | total ms | ms per tensor |\n|---|---|---|---|---|---|---|")
    for r, what, way, s in rows:
        print(f"| {r} | {what} | {way} | {args.tensors} | {args.mb:g} | {s * 1000:.1f} | {s * 1000 / args.tensors:.2f} |")
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
