"""How many operations one decoding step of a Qwen2 chat model (fusion's summary model's architecture) runs,
with the framework's decoding fusions installed one after another: a count of PyTorch's ATen operators
(``TorchDispatchMode``), each of which launches at least one kernel on a GPU. A one-token step of a small
model is bound by its kernel launches (``bench/results/fusion_step_h200.md``), so fewer operators a layer
is what ``framework.generation.fused_norm`` and ``fused_projections`` aim at. Views (reshapes, slices,
transposes) launch nothing and are not counted.

Runs on the CPU in seconds on tiny configs of two and four layers: the per-layer count is their difference
over two layers, the same at the real size (Qwen2.5-1.5B has 28 such layers). It counts operators, not
time: the time they save on a GPU is measured by ``bench/fusion_step_profile.py``.

    python bench/decode_step_ops.py --out bench/results/decode_step_ops_cpu.md
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "transpose", "t", "permute", "unsqueeze", "squeeze",
         "slice", "select", "expand", "alias", "as_strided", "detach", "split", "chunk", "unbind"}
#: (label, what is installed): each row adds to the one before
SETTINGS = (("transformers as it is", ()), ("+ fused RMSNorm", ("norm",)),
            ("+ fused projections (transformers' rotary embedding)", ("norm", "proj")),
            ("+ joint rotary embedding", ("norm", "proj", "rotary")))


def step_ops(layers: int, installed: tuple[str, ...], folder: Path) -> collections.Counter:
    """The ATen operators of one one-token step after a 4-token prompt, over a static cache."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from transformers import AutoModelForCausalLM, StaticCache
    from transformers.models.qwen2 import modeling_qwen2

    from framework.generation import fused_norm, fused_projections
    from framework.testing.llm import make_tiny_chat_model

    # (a wrapped rotary embedding from an earlier row is put back: each row installs its own)
    wrapped = modeling_qwen2.apply_rotary_pos_emb
    modeling_qwen2.apply_rotary_pos_emb = getattr(wrapped, "joint_of", wrapped)
    model = AutoModelForCausalLM.from_pretrained(make_tiny_chat_model(folder / f"l{layers}", layers=layers),
                                                 local_files_only=True, dtype=torch.float32).eval()
    if "norm" in installed:
        fused_norm.install(model, force=True)
    if "proj" in installed:
        fused_projections.install(model, force=True, env={"FRAMEWORK_JOINT_ROTARY": "1" if "rotary" in installed
                                                          else "0"})

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: collections.Counter = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's hook
            name = func.overloadpacket.__name__
            if name not in VIEWS:
                self.ops[name] += 1
            return func(*args, **(kwargs or {}))

    cache = StaticCache(config=model.config, max_cache_len=16)
    with torch.inference_mode():
        model(torch.tensor([[5, 9, 14, 3]]), past_key_values=cache, use_cache=True)
        counter = Count()
        with counter:
            model(torch.tensor([[7]]), past_key_values=cache, use_cache=True, cache_position=torch.tensor([4]))
    return counter.ops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/decode_step_ops.py --out bench/results/decode_step_ops_cpu.md")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    import transformers

    lines = [f"# Operators in one decoding step of a Qwen2 chat model (transformers {transformers.__version__})", "",
             "`python bench/decode_step_ops.py`: ATen operators other than views, counted on the CPU; per layer: "
             "(four layers - two layers) / 2.", "",
             "| installed | a layer's operators | the step's others | a layer's, by operator |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, installed in SETTINGS:
            two, four = step_ops(2, installed, Path(tmp)), step_ops(4, installed, Path(tmp))
            layer = {k: (four[k] - two[k]) // 2 for k in four if four[k] != two[k]}
            per_layer = sum(layer.values())
            others = sum(two.values()) - 2 * per_layer
            detail = ", ".join(f"{k} {v}" for k, v in sorted(layer.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"| {label} | {per_layer} | {others} | {detail} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
