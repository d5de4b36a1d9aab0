"""The adapter's card: ``finetune.json`` (read by the describer and ``--eval``) and a short ``README.md``.

The card says what the adapter is: the base model (manifest id, revision, family), the data (file,
digest, sample and video counts of each split), the method and hyperparameters, how frames were
sampled (the ``qwen2_vl_temporal`` parameters that reproduce it), the training and validation
losses, and the versions of torch, transformers and peft.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD = "finetune.json"


def read_card(folder: Path) -> dict[str, Any] | None:
    """The card of an adapter folder, or None when it has none (e.g. an adapter made elsewhere)."""
    file = Path(folder) / CARD
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_card(folder: Path, card: dict[str, Any]) -> None:
    """Write ``finetune.json`` and ``README.md`` (peft's generic README is replaced)."""
    folder = Path(folder)
    (folder / CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    base, data, hp, res = card["base_model"], card["data"], card["hyperparameters"], card["results"]
    lines = [
        f"# LoRA adapter for {base['id']}", "",
        f"Fine-tuned with `framework finetune` ({card['method']}) on {data['train_samples']} samples "
        f"({data['train_videos']} videos) from `{data['path']}`; validated on {data['val_samples']} samples "
        f"({data['val_videos']} videos).", "",
        "| | |", "|---|---|",
        f"| base model | `{base['id']}` (revision `{base.get('revision') or 'local'}`, family {base['family']}) |",
        f"| method | {card['method']} |",
        *[f"| {k} | {_fmt(v)} |" for k, v in hp.items()],
        f"| frames | {card['sampling']} |",
        f"| steps | {res['steps']} |",
        f"| final training loss | {_fmt(res.get('train_loss'))} |",
        f"| validation loss before / after | {_fmt(res.get('val_loss_before'))} / {_fmt(res.get('val_loss'))} |",
        "", "Use it:", "", "```bash",
        f"framework describe VIDEO --model {base['id']} --adapter {folder}", "```", "",
        "or in `registry.yaml`:", "", "```yaml", "analyzers:", "  qwen2_vl_temporal:", "    enabled: true",
        "    params:", f"      model: {base['id']}", f"      adapter: {folder}",
        *[f"      {k}: {v}" for k, v in card["sampling"].items()], "```", "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


__all__ = ["CARD", "read_card", "write_card"]
