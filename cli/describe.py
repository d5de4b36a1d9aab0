"""`framework describe VIDEO`: one description of a whole video by a vision-language model.

The single-shot mode that replaces seed 003's SmolVLM2 CLI (``inference_script.py``): the same
options (``--model``, ``--frames``, ``--resize``, ``--max-tokens``, ``--prompt``, ``--list-models``)
and the same JSON fields (prompt, parameters, the answer as ``analysis``, timing, model and video
info). It runs the ``qwen2_vl_temporal`` analyzer through the framework's runner with one chunk
(``chunking: whole``): the frames come from one decode pass, sampled uniformly over the video, and
the model loads from the models cache like any analyzer's (missing weights: the exact
``framework models pull`` command).
"""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from . import console, main, user_errors

ANALYZER = "qwen2_vl_temporal"
DEFAULT_MODEL = "smolvlm2-256m-video-instruct"  # seed 003's default: runs on a CPU
DESCRIBE_PROMPT = ("Describe the main events of this video: the setting, the people and objects, what they do, "
                   "and any text on screen.")


def vlm_models() -> list[dict[str, Any]]:
    """The models the describer can load: id, family, repo, size, VRAM by precision, cached or not."""
    from analyzers.vlm.catalog import KNOWN_MODELS
    from framework.models import find_model, load_manifest

    manifest = load_manifest()
    rows = []
    for mid, known in KNOWN_MODELS.items():
        if mid not in manifest:
            continue
        spec = manifest[mid]
        found = find_model(spec)
        rows.append({"id": mid, "family": known.family, "repo": spec.locator,
                     "size_gb": round(spec.size_bytes / 1e9, 2) if spec.size_bytes else None,
                     "vram_gb": dict(spec.vram_gb), "license": spec.license, "adapter_of": known.base,
                     "cached": found is not None, "path": str(found.path) if found else None, "note": known.note})
    return rows


def resolve_model_id(model: str) -> str:
    """A manifest id, also from a Hugging Face repo id the manifest lists (``HuggingFaceTB/SmolVLM2-2.2B-Instruct``)."""
    from framework.errors import ConfigError
    from framework.models import load_manifest

    manifest = load_manifest()
    if model in manifest:
        return model
    by_repo = {k.lower(): v for k, v in manifest.by_repo_id().items()}
    if model.lower() in by_repo:
        return by_repo[model.lower()]
    known = ", ".join(r["id"] for r in vlm_models())
    raise ConfigError(f"--model: {model!r} is neither a models-manifest id nor a repo the manifest lists; "
                      f"video-language models: {known} (`framework describe --list-models`)")


def describe(video: Path, *, model: str = DEFAULT_MODEL, frames: int = 8, resize: int | None = None,
             max_tokens: int = 100, prompt: str | None = None, device: str = "auto",
             offline: bool = False, adapter: Path | None = None) -> dict[str, Any]:
    """Describe ``video`` in one VLM call; the result dict seed 003's CLI wrote (plus frame times)."""
    from framework.errors import FrameworkError, ModelError
    from framework.media import probe
    from framework.runner import analyze

    started = time.perf_counter()
    model_id = resolve_model_id(model)
    meta = probe(video)
    duration = float(meta.duration or 0.0)
    if not meta.has_video or duration <= 0:
        raise FrameworkError(f"{video}: no video stream to describe")
    params: dict[str, Any] = {
        "model": model_id, "chunking": "whole", "frames_per_chunk": frames, "max_new_tokens": max_tokens,
        "prompt": prompt or DESCRIBE_PROMPT, "batch_size": 1,
        # a stream dense enough that a frame lies near the middle of each of ``frames`` equal parts
        "fps": round(min(30.0, max(0.05, 4.0 * frames / duration)), 4)}
    if adapter is not None:  # a LoRA folder (`framework finetune`): applied with peft
        if not Path(adapter).is_dir():
            raise FrameworkError(f"--adapter: {adapter} is not a folder (a `framework finetune` output)")
        params["adapter"] = str(Path(adapter).resolve())
    if resize:
        landscape = (meta.width or 1) >= (meta.height or 1)
        params["frame_width" if landscape else "frame_height"] = resize
    with tempfile.TemporaryDirectory(prefix="framework-describe-") as tmp:
        registry = Path(tmp) / "registry.yaml"
        entry = {"enabled": True, "params": params}
        if device != "auto":
            entry["device"] = device
        import yaml

        registry.write_text(yaml.safe_dump({"analyzers": {ANALYZER: entry}}), encoding="utf-8")
        result = analyze(video, registry_path=registry, out_dir=Path(tmp) / "run", only=[ANALYZER],
                         skip=["cut_analysis"], progress=False, offline=offline)
    track = result.timeline.tracks.get(ANALYZER)
    if track is None or track.status != "ok":
        why = (track.reason if track is not None else None) or "the analyzer did not run"
        why = why.replace("set `device: cpu` for it in registry.yaml", "use --device cpu")
        if track is not None and "framework models pull" in (why or ""):
            raise ModelError(f"{model_id}: {why}")
        raise FrameworkError(f"{video}: could not describe it with {model_id}: {why}")
    event = track.events[0]
    data = track.data
    stat = video.stat()
    return {
        "video_path": str(video), "prompt": params["prompt"], "num_frames": len(event.data["frame_times"]),
        "resize": resize, "max_tokens": max_tokens, "analysis": event.data["text"],
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"), "model": model_id,
        "adapter": params.get("adapter"),
        "model_revision": track.models[0].revision if track.models else None,
        "inference_parameters": {"num_frames": frames, "resize": resize, "max_tokens": max_tokens,
                                 "custom_prompt": prompt is not None, "device": track.device,
                                 "frame_size": data.get("frame_size"), "dtype": data.get("model_info", {}).get("dtype")},
        "frame_times": event.data["frame_times"],
        "timing": {"model_load_time": data.get("load_s"), "inference_time": data.get("describe_s"),
                   "total_time": round(time.perf_counter() - started, 3)},
        "video_info": {"file_size_mb": round(stat.st_size / 1e6, 2),
                       "last_modified": dt.datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds"),
                       "duration_s": round(duration, 3), "width": meta.width, "height": meta.height,
                       "fps": meta.fps},
    }


def _print_models(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="video-language models (framework describe --model ID)")
    for col in ("id", "size", "VRAM GB", "cached"):
        table.add_column(col, no_wrap=col == "id")
    for r in rows:
        vram = ", ".join(f"{k} {v:g}" for k, v in r["vram_gb"].items()) or "?"
        size = f"{r['size_gb']:g} GB" if r["size_gb"] else "?"
        table.add_row(r["id"], size, vram, "yes" if r["cached"] else "no")
    console.print(table)
    if not any(r["cached"] for r in rows):
        console.print(f"none cached: `framework models pull {DEFAULT_MODEL}` fetches the small CPU-friendly one",
                      highlight=False)


@main.command("describe")
@click.argument("video", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-m", "--model", default=DEFAULT_MODEL, show_default=True,
              help="Models-manifest id (or its Hugging Face repo id) of the video-language model.")
@click.option("-f", "--frames", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Frames sampled uniformly over the whole video.")
@click.option("-r", "--resize", type=click.IntRange(28, 3840), default=None,
              help="Longest edge of the frames in pixels (default: the model's own size).")
@click.option("-t", "--max-tokens", "max_tokens", type=click.IntRange(1, 4096), default=100, show_default=True,
              help="Longest answer, in tokens.")
@click.option("-p", "--prompt", default=None, help="The question or instruction (default: describe the main events).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True,
              help="Where the model runs (auto: the GPU when there is one).")
@click.option("--offline", is_flag=True, help="Never download the model; a missing one is an error naming "
              "`framework models pull ID`.")
@click.option("--adapter", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A LoRA adapter folder made by `framework finetune` (applied to --model with peft).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the JSON result to this file.")
@click.option("--list-models", "list_models", is_flag=True,
              help="List the video-language models: size, VRAM by precision, cached or not.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the model list) as JSON.")
@user_errors
def describe_cmd(video: Path | None, model: str, frames: int, resize: int | None, max_tokens: int,
                 prompt: str | None, device: str, offline: bool, adapter: Path | None, out_file: Path | None,
                 list_models: bool, as_json: bool) -> None:
    """Describe a whole video in words with a vision-language model (one call, one answer).

    The frames are sampled uniformly over the video and given to the model with their times. For
    descriptions chunk by chunk with times, enable the qwen2_vl_temporal analyzer in registry.yaml
    and use `framework run`.

    \b
    Examples:
      framework describe --list-models
      framework describe clip.mp4
      framework describe clip.mp4 --model smolvlm2-2.2b-instruct --frames 12 --resize 512 --max-tokens 200
      framework describe clip.mp4 --prompt "What emotions are shown?" --json --out clip.describe.json
      framework describe clip.mp4 --model qwen2-vl-2b-instruct --adapter adapters/my-style
    """
    if list_models:
        rows = vlm_models()
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            _print_models(rows)
        return
    if video is None:
        raise click.UsageError("give a VIDEO to describe (or --list-models)")
    if not video.is_file():
        from framework.errors import InputError

        raise InputError(f"{video}: no such file")
    if not as_json:
        console.print(f"describing {video} with {model} ({frames} frames)...", highlight=False)
    import logging

    verbose = click.get_current_context().find_root().params.get("verbose", 0)
    quiet = [] if verbose else [logging.getLogger(n) for n in ("framework.runner", "framework.outputs")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # a one-shot answer: not the run's notes about outputs it does not need
        lg.setLevel(logging.WARNING)
    try:
        result = describe(video, model=model, frames=frames, resize=resize, max_tokens=max_tokens, prompt=prompt,
                          device=device, offline=offline, adapter=adapter)
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out_file is not None:
        out_file.write_text(text + "\n", encoding="utf-8")
    if as_json:
        click.echo(text)
        return
    t = result["timing"]
    console.print(result["analysis"] or "(the model gave an empty answer)", highlight=False, markup=False)
    console.print(f"[dim]{result['model']} on {result['inference_parameters']['device']}: "
                  f"{result['num_frames']} frames at {', '.join(f'{x:.1f}' for x in result['frame_times'])} s; "
                  f"load {t['model_load_time']:.1f} s, inference {t['inference_time']:.1f} s, "
                  f"total {t['total_time']:.1f} s[/]", highlight=False)
