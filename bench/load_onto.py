"""How long a transformers model takes to load onto a GPU: built on the host and copied with ``.to``
(what the VLM and the summary model did), built on the host and moved through pinned buffers by
``framework.host_to_device.move_module`` (what they do now), and ``device_map`` straight from the
safetensors files. The host build and the move are timed apart. On an H200 with Qwen2-VL-7B on /dev/shm
``.to`` and ``device_map`` took the same 10-11 s (bench/results/load_onto_h200.md, thirteenth session).

Each way runs in a fresh interpreter (torch and transformers imported before the clock starts), alternating, on a
model folder already in the page cache (e.g. the end-to-end bench's seeded Qwen2-VL-7B on /dev/shm):

    python bench/load_onto.py --folder /dev/shm/e2e/hf/hub/models--Qwen--Qwen2-VL-7B-Instruct/snapshots/* \
        --model-class Qwen2VLForConditionalGeneration --repeats 2 --out $OUT/load_onto.md
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch, transformers
folder, cls, way = sys.argv[1], sys.argv[2], sys.argv[3]
torch.cuda.init(); torch.zeros(1, device="cuda"); torch.cuda.synchronize()
model_cls = getattr(transformers, cls)  # (its module, imported lazily: before the clock, as a run's warm-up does)
if way == "host_then_pinned":
    from framework.host_to_device import move_module
t = time.perf_counter()
host_s = None
if way in ("host_then_to", "host_then_pinned"):
    model = model_cls.from_pretrained(folder, dtype=torch.bfloat16, local_files_only=True)
    host_s = round(time.perf_counter() - t, 2)
    if way == "host_then_to":
        model.to("cuda")
    else:
        move_module(model, "cuda")
else:
    model = model_cls.from_pretrained(folder, dtype=torch.bfloat16, local_files_only=True, device_map="cuda")
torch.cuda.synchronize()
s = time.perf_counter() - t
devices = sorted({str(p.device) for p in model.parameters()})
print(json.dumps({"way": way, "seconds": round(s, 2), "host_s": host_s,
                  "move_s": None if host_s is None else round(s - host_s, 2), "devices": devices,
                  "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 2),
                  "gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1)}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, required=True, help="a transformers model folder (config + safetensors)")
    ap.add_argument("--model-class", default="AutoModelForCausalLM", help="the transformers class to load it with")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    rows = []
    for _ in range(args.repeats):
        for way in ("host_then_to", "host_then_pinned", "device_map"):
            done = subprocess.run([sys.executable, "-c", CHILD, str(args.folder), args.model_class, way],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                rows.append({"way": way, "seconds": None, "error": done.stderr.strip().splitlines()[-1:]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    import torch

    lines = [f"Loading {args.folder.name} ({args.model_class}) onto {torch.cuda.get_device_name(0)}, bf16, "
             f"torch {torch.__version__}; each row a fresh interpreter; torch, transformers and the model class's own module imported before the clock starts.", "",
             "| way | load s | of it on the host s | moving s | parameters (B) | on | peak GPU GB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['way']} | {r.get('seconds')} | {r.get('host_s') or '-'} | {r.get('move_s') or '-'} | "
                     f"{r.get('params_b', '-')} | "
                     f"{', '.join(r.get('devices', [])) or r.get('error')} | {r.get('gpu_gb', '-')} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
