"""GPU check of the summary LLM path: the fusion analyzer with the transformers backend on a
real-size Qwen2.5-1.5B architecture (random weights, bf16) on CUDA.

Random weights write gibberish (every summary part falls back to extractive text and says so)
and never stop early, so each call generates its full ``max_new_tokens``: this measures the
loading code, device placement, map-reduce call count, tokens against the budget, speed and peak
VRAM (against the manifest's ``vram_gb`` for ``qwen2.5-1.5b-instruct``), not quality.

    python bench/gpu_summary_llm.py --out results.md     # on a CUDA machine; ~3 min on one H200
    python bench/gpu_summary_llm.py --max-batch 1,8      # one prompt per generate call, then batches of 8
    python bench/gpu_summary_llm.py --cuda-graphs 0,1    # decoding steps without, then with CUDA graphs
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(folder: Path) -> Path:
    """Qwen2.5-1.5B-Instruct's architecture (config.json of the published model) with random weights,
    saved as a snapshot folder with the description VLM bench's tokenizer (``vlm_throughput.tokenizer``,
    ChatML) and template, its greedy words that tokenizer's word pieces (``words_only``): the VLM's random
    descriptions, in the same tokenizer, then count about as many tokens in fusion's digest as the VLM
    generated, as real descriptions do in the real models' shared tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from framework.testing.llm import CHATML_TEMPLATE, words_only
    from vlm_throughput import QWEN_SPECIALS, tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("model*.safetensors"):
        f.unlink()
    fast = tokenizer(QWEN_SPECIALS, "<|im_end|>")
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(folder)
    cfg = Qwen2Config(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                      rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                      eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
                      pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"))
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    words_only(model, fast)  # (its answers are words)
    model.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    torch.cuda.empty_cache()
    return folder, params


def run(model_dir: Path, duration: float, budget: int, max_batch: int = 8, graphs: bool = True) -> dict:
    import torch

    from analyzers.fusion import Fusion
    from analyzers.fusion.synthetic import synthetic_timeline
    from framework import AnalyzerInputs
    from framework.plugins import build_plugin_manager
    from framework.summary import Summary

    host = build_plugin_manager(load_entrypoints=False)
    timeline = synthetic_timeline(duration)
    fusion = Fusion({"backend": "transformers", "model": str(model_dir), "token_budget": budget,
                     "backend_options": {"max_batch": max_batch, "cuda_graphs": graphs}})
    gc.collect()  # the previous run's model (its generate wrapper makes a reference cycle) off the GPU first
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fusion.load("cuda", {})
    t_load = time.perf_counter() - t0
    # count the ids each generation produced and its time (the text of random weights is empty); at the
    # backend's own call, since with CUDA graphs transformers' generate makes only the first tokens
    backend, gen_log = fusion.backend, []
    real_generate = backend._generate

    def counting_generate(inputs, max_new_tokens, temperature):
        torch.cuda.synchronize()
        g0 = time.perf_counter()
        out = real_generate(inputs, max_new_tokens, temperature)
        torch.cuda.synchronize()
        gen_log.append((int(out.shape[1] - inputs["input_ids"].shape[1]), int(inputs["input_ids"].shape[1]),
                        time.perf_counter() - g0, int(inputs["input_ids"].shape[0])))
        return out

    backend._generate = counting_generate
    try:
        track = fusion.analyze(AnalyzerInputs(video=timeline.video, upstream=dict(timeline.tracks), host=host))
    finally:
        device = getattr(fusion.backend, "device", None)
        fusion.unload()
    wall = time.perf_counter() - t0
    summary = Summary.from_track(track)
    stats = track.data.get("fusion", {})
    return {"duration": duration, "device": device, "load_s": t_load, "wall_s": wall,
            "calls": stats.get("calls"), "generate_calls": len(gen_log), "generated": sum(g[0] * g[3] for g in gen_log),
            "gen_s": sum(g[2] for g in gen_log), "max_prompt": max((g[1] for g in gen_log), default=0),
            "tokens_used": summary.tokens_used, "budget": summary.token_budget,
            "peak_gb": torch.cuda.max_memory_allocated() / 2**30, "backend": summary.backend,
            "extractive": summary.extractive, "notes": len(summary.notes), "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--budget", type=int, default=6000)
    ap.add_argument("--max-batch", default="8", help="the backend's max_batch values to run (comma list; 1: one "
                    "prompt per generate call, as before batching)")
    ap.add_argument("--cuda-graphs", default="1", help="the backend's cuda_graphs values to run (comma list of 0/1)")
    args = ap.parse_args()
    import torch
    import yaml

    from framework.devices import attention_without_cudnn

    attention_without_cudnn(torch)  # as a run's executor does when it first uses a GPU

    assert torch.cuda.is_available(), "needs a CUDA device"
    manifest = yaml.safe_load((ROOT / "models_manifest.yaml").read_text())["models"]["qwen2.5-1.5b-instruct"]
    lines = [f"# Summary LLM on the GPU: {torch.cuda.get_device_name(0)}", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}; model: Qwen2.5-1.5B architecture, random "
             f"weights, bf16; token budget {args.budget}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        folder, params = build_model(Path(tmp) / "qwen2.5-1.5b-random")
        lines.append(f"built and saved {params / 1e9:.2f} B parameters in {time.perf_counter() - t:.1f} s")
        lines += ["", "| video | max_batch | CUDA graphs | device | load s | fusion wall s | LLM calls | generate calls | new tokens "
                  "generated | tokens/s in generate | largest prompt / budget | peak VRAM GB | manifest bf16 estimate GB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for duration in (600.0, 7200.0):
            for max_batch, graphs in ((int(b), g == "1") for b in args.max_batch.split(",")
                                      for g in args.cuda_graphs.split(",")):
                r = run(folder, duration, args.budget, max_batch, graphs)
                gen = r["generated"] or 0
                rate = gen / max(1e-9, r["gen_s"])
                used = (r["stats"].get("cuda_graphs") or {}).get("replayed_steps", 0)
                lines.append(f"| {duration / 60:.0f} min | {max_batch} | {'yes' if graphs else 'no'} "
                             f"({used} steps replayed) | {r['device']} | {r['load_s']:.1f} | "
                             f"{r['wall_s']:.1f} | {r['calls']} | {r['generate_calls']} | {gen} | {rate:.0f} | "
                             f"{r['tokens_used']} / {r['budget']} | {r['peak_gb']:.2f} | {manifest['vram_gb']['bf16']} |")
                print(lines[-1], r["stats"], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
