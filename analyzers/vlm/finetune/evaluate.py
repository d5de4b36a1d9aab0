"""``framework finetune --eval``: the validation samples described with and without the adapter.

Both descriptions come from the describer's own family class (``analyzers.vlm.families``): the
base model as ``qwen2_vl_temporal`` loads it, then the same model, loaded once, with the adapter
applied by peft and merged (as ``adapter:`` does), on the same frames, prompt and generation settings.
The result is ``eval.md`` in the adapter folder: per sample the reference caption, the base
model's description and the fine-tuned one, side by side (seed 002's "vanilla / FT" comparison),
and ``eval.json`` with the same content.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from framework.errors import ConfigError

from ..families import GenerationOptions, Request, family_class
from . import data as datamod
from .card import read_card


def _describe_before_and_after(family: str, folder: Path, adapter: Path, device: str, items: list[datamod.Framed],
                               prompt: str, max_new_tokens: int, stage: Callable[[str], None],
                               base_id: str) -> tuple[list[str], list[str]]:
    """The descriptions of the base model, then of the same loaded model with the adapter merged in
    (``HFFamily.merge_adapter``, as ``adapter:`` merges it at load): the model is loaded once."""
    fam = family_class(family)(GenerationOptions(max_new_tokens=max_new_tokens))
    fam.load(folder, device, None, None)
    try:
        stage(f"describing them with {base_id}")
        before = _describe_all(fam, items, prompt)
        stage(f"describing them with {base_id} + the adapter")
        fam.merge_adapter(adapter)
        return before, _describe_all(fam, items, prompt)
    finally:
        fam.close()


def _describe_all(fam: Any, items: list[datamod.Framed], prompt: str) -> list[str]:
    texts = []
    for f in items:
        s = f.sample
        start, end = s.span()
        req = Request(index=0, start=start, end=end, times=list(f.times), frames=f.frames(),
                      instruction=s.prompt or prompt)
        prepared = fam.prepare([req])
        texts.append(fam.decode(fam.generate(prepared), prepared)[0].text)
    return texts


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "(empty)"


def evaluate(adapter: Path, *, device: str = "auto", max_new_tokens: int = 128, limit: int | None = None,
             stage: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Describe the adapter's validation samples with the base model and with the adapter; write
    ``eval.md`` and ``eval.json`` beside the adapter and return what they hold."""
    from .train import pick_device, resolve_base

    adapter = Path(adapter)
    card = read_card(adapter)
    if card is None:
        raise ConfigError(f"{adapter}: no finetune.json card; --eval needs an adapter made by `framework finetune`")
    samples = [datamod.Sample(video=Path(s["video"]), caption=s["caption"], source=s.get("source", ""),
                              start=s.get("start"), end=s.get("end"), prompt=s.get("prompt"),
                              duration=s.get("duration")) for s in card.get("validation", [])]
    if not samples:
        raise ConfigError(f"{adapter}: the run had no validation samples (--val-split 0 or a single video); "
                          "nothing to compare")
    samples = samples[:limit] if limit else samples
    base = card["base_model"]
    folder = Path(base["path"]) if Path(base["path"]).is_dir() else resolve_base(base["id"])[0]
    dev = pick_device(device)
    s = card["sampling"]
    sampling = datamod.Sampling(base["family"], s["fps"], s["frame_width"], s["frames_per_chunk"])
    with tempfile.TemporaryDirectory(prefix="finetune-eval-") as tmp:
        stage(f"decoding {len(samples)} validation samples")
        items = datamod.extract_frames(samples, sampling, Path(tmp))
        before, after = _describe_before_and_after(base["family"], folder, adapter, dev, items, card["prompt"],
                                                   max_new_tokens, stage, base["id"])
    rows = [{"video": str(f.sample.video), "start": f.sample.start, "end": f.sample.end,
             "frame_times": f.times, "reference": f.sample.caption, "base": b, "finetuned": a}
            for f, b, a in zip(items, before, after)]
    result = {"adapter": str(adapter), "base_model": base["id"], "device": dev, "max_new_tokens": max_new_tokens,
              "val_loss_before": card["results"].get("val_loss_before"), "val_loss": card["results"].get("val_loss"),
              "samples": rows}
    (adapter / "eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [f"# {base['id']}: base model and fine-tuned adapter, side by side", "",
             f"Adapter `{adapter}`; validation loss {_loss(result['val_loss_before'])} before training, "
             f"{_loss(result['val_loss'])} after. {len(rows)} validation samples, greedy decoding, at most "
             f"{max_new_tokens} new tokens, on {dev}.", "",
             "| video | reference caption | base model | fine-tuned |", "|---|---|---|---|"]
    for r in rows:
        where = Path(r["video"]).name
        if r["start"] is not None or r["end"] is not None:
            where += f" ({r['start'] or 0:g}-{r['end'] if r['end'] is not None else 'end'} s)"
        lines.append(f"| {_cell(where)} | {_cell(r['reference'])} | {_cell(r['base'])} | {_cell(r['finetuned'])} |")
    (adapter / "eval.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "n/a"


__all__ = ["evaluate"]
