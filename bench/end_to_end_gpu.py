"""End to end: the whole default set as ONE ``framework run`` on a generated clip, with every model at real
size (random weights), timed from outside (issue 12's last GPU item).

Target (issue 12): at least 20 video-minutes per GPU-minute on one H200 for a 10-minute 720p clip
(NVIDIA's video summarization blueprint publishes about 7-10 on 8 GPUs).

What it does, in three processes so that the timed one is only the real command:

1. ``prepare`` (a child process; not timed): prints which optional packages import here and which
   analyzers therefore cannot run; computes the set (every built-in analyzer whose class says
   ``original_status = "active"``, what they depend on, and fusion); generates the clip (1280x720,
   hard cuts every 4-16 s, captions and a face photo from ``vision_throughput.SyntheticClip``,
   formant speech with pauses and music from ``audio_throughput.speech_audio``); seeds every model
   the set needs, in its real on-disk format, where the runner's resolver looks (manifest id ->
   source, locator, pinned revision), with the builders that already exist:
   ``vlm_throughput.install`` (Qwen2-VL-7B), ``random_models`` (whisper base, wav2vec2-large,
   AST), ``vision_throughput.build_models`` (YOLOv8x/v8s, SegFormer-b0, CLIP ViT-B-32),
   ``face_throughput.build_models`` (ViT-B/16 age classifier), ``gpu_summary_llm.build_model``
   (Qwen2.5-1.5B for fusion's ``auto`` backend); ``--tiny`` uses the tests' tiny builders
   (``tests/vision_fixtures.py``, ``tests/face_fixtures.py``, ``tests/vlm_fixtures.py``,
   ``framework.testing.llm.make_tiny_chat_model``). Writes a registry.yaml enabling exactly the set
   with ``device: auto``.
2. the real CLI, timed from outside: ``/usr/bin/time -v python -m cli run CLIP --registry REG --out RUN
   --no-progress --offline --json --vram-budget auto`` (plus a psutil poll of its process tree for
   peak RSS, where GNU time is missing), in a work folder with its own FRAMEWORK_HOME and caches
   (/dev/shm when it has room), the hub offline.
3. this process reads ``RUN/results.json``: the run's receipt (video s per wall s, video-min per
   GPU-min, GPU busy fractions) and every track's status and receipt, prints a table per analyzer
   and a summary line, and writes ``--out`` (markdown: command, machine, tables, receipt JSON).

Random weights never stop on their own, so two analyzers get a fixed decode length (shown in the
report): speech_transcription decodes exactly 96 tokens per 30 s window (no temperature fallback)
and qwen2_vl_temporal exactly its default 128 new tokens per chunk; fusion's summary LLM generates
its full ``max_new_tokens`` per call. Outputs are noise: this measures loading, scheduling, speed
and memory, never quality.

    # the GPU machine (one call; needs the wheels listed in docs/benchmarks.md):
    python bench/end_to_end_gpu.py --device cuda --minutes 10 --out bench/results/end_to_end_h200.md
    # or in two calls (the second within the machine's idle time, so /dev/shm is still there):
    python bench/end_to_end_gpu.py --device cuda --minutes 10 --prepare-only --work /dev/shm/e2e
    python bench/end_to_end_gpu.py --device cuda --minutes 10 --reuse --work /dev/shm/e2e --out bench/results/end_to_end_h200.md
    # this machine (toy sizes, seconds of video):
    .venv/bin/python bench/end_to_end_gpu.py --tiny --device cpu --minutes 0.25 --out bench/results/end_to_end_cpu_tiny.md
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "bench", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from cpu_samples import CpuTimes  # noqa: E402  (bench/cpu_samples.py; stdlib only)
from cpu_samples import report_lines as cpu_report_lines  # noqa: E402
from gpu_samples import GpuSampler, report_lines  # noqa: E402  (bench/gpu_samples.py; stdlib only)
from machine import cpu_model, cpu_probe_ms, load_text, offline_work_dir  # noqa: E402  (bench/machine.py; stdlib only)

logger = logging.getLogger("end_to_end_gpu")

# (module to import, what to install, analyzers that need it). Bundled weights (rapidocr, silero,
# mediapipe) ship in these packages; the analyzers downstream of voice_activity follow from depends_on.
PACKAGES: list[tuple[str, str, list[str]]] = [
    ("av", "av", ["* (decoding: nothing runs without it)"]),
    ("pydantic", "pydantic (+ pydantic-core, annotated-types, typing-inspection)", ["* (the framework)"]),
    ("torch", "torch", ["qwen2_vl_temporal", "speech_transcription", "speech_emotion", "object_detection",
                        "product_detection", "background_segmentation", "content_quality", "age_estimation",
                        "voice_activity", "audio_environment", "sound_effects", "fusion"]),
    ("transformers", "transformers", ["qwen2_vl_temporal", "speech_emotion", "background_segmentation",
                                      "age_estimation", "audio_environment", "sound_effects", "fusion"]),
    ("ultralytics", "ultralytics (+ ultralytics-thop, polars)", ["object_detection", "product_detection"]),
    ("lap", "lap", ["object_detection", "product_detection"]),
    ("whisper", "openai-whisper (+ more-itertools)", ["speech_transcription"]),
    ("open_clip", "open_clip_torch (+ ftfy, wcwidth)", ["content_quality"]),
    ("rapidocr_onnxruntime", "rapidocr_onnxruntime (+ pyclipper, shapely)", ["text_overlay"]),
    ("mediapipe", "mediapipe==0.10.21 (numpy<2, protobuf<5)", ["eye_tracking", "age_estimation"]),
    ("silero_vad", "silero-vad", ["voice_activity"]),
    ("librosa", "librosa (+ soxr, audioread, pooch, lazy-loader, decorator, soundfile)", ["speech_flow"]),
]

# Random weights never emit an end token: fix the decode length the way the component benchmarks did.
RANDOM_WEIGHT_PARAMS: dict[str, dict[str, Any]] = {
    "speech_transcription": {"max_new_tokens": 96, "suppress_eot": True, "temperature_fallback": False,
                             "no_speech_threshold": None},
    "qwen2_vl_temporal": {"min_new_tokens": 128},
}
#: at the deadline the command gets SIGINT (a user's Ctrl-C) and this long to save what finished
INTERRUPT_GRACE_S = 25.0
SUMMARY_MODEL = "qwen2.5-1.5b-instruct"  # fusion's `auto` backend picks the manifest's default summary model when cached


# --- step 1: prepare (child process) ------------------------------------------------------------------
def probe_packages() -> list[dict[str, Any]]:
    """Which optional packages import here (an import, not a file lookup: a wheel built for another numpy fails here)."""
    rows = []
    for module, wheel, analyzers in PACKAGES:
        try:
            mod = importlib.import_module(module)
            problem = None
            if module == "mediapipe":  # the legacy solutions the face analyzers use
                mod.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True).close()
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
        rows.append({"module": module, "wheel": wheel, "analyzers": analyzers, "ok": problem is None,
                     "problem": problem,
                     "version": getattr(sys.modules.get(module), "__version__", None) if problem is None else None})
    return rows


def with_versions(machine: str, packages: list[dict[str, Any]]) -> str:
    """The prepare step's machine line with torch's and transformers' versions as ``packages`` (this call's
    probe) found them: a ``--reuse`` call may carry another transformers than the preparing call did (BY's
    reports named the image's 5.17 while the timed runs imported 5.23). No CUDA is started here."""
    for row in packages:
        if row["module"] in ("torch", "transformers") and row["version"]:
            machine = re.sub(rf"\b{row['module']} [^\s,;]+", f"{row['module']} {row['version']}", machine)
    return machine


def analyzer_set() -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """(names, name -> depends_on, name -> original status): the classes with ``original_status == "active"``,
    what they depend on (transitively; ``*`` excepted), and fusion."""
    from framework.plugins import build_plugin_manager

    host = build_plugin_manager(load_entrypoints=False)
    classes = host.analyzers
    wanted = [n for n, c in classes.items() if getattr(c, "original_status", None) == "active"]
    todo = list(wanted)
    while todo:
        for dep in classes[todo.pop()].depends_on:
            if dep != "*" and dep in classes and dep not in wanted:
                wanted.append(dep)
                todo.append(dep)
    if "fusion" in classes and "fusion" not in wanted:
        wanted.append("fusion")
    names = sorted(wanted, key=lambda n: (n == "fusion", n))
    return (names, {n: [d for d in classes[n].depends_on] for n in names},
            {n: getattr(classes[n], "original_status", None) or "(dependency / summary)" for n in names})


def _look(cls: Any, seed: int) -> Any:
    """``vision_throughput.SyntheticClip(seed)``; without ultralytics (where its face photo ships) the same
    texture, boxes and captions with no face."""
    try:
        return cls(seed=seed)
    except ImportError:
        import cv2
        import numpy as np

        clip = cls.__new__(cls)
        small = np.random.default_rng(seed).integers(30, 220, size=(60, 200, 3), dtype=np.uint8)
        clip.texture = cv2.resize(small, (2400, 720), interpolation=cv2.INTER_CUBIC)
        clip.face, clip._sized = None, {}
        return clip


def make_clip(path: Path, minutes: float, width: int, height: int, fps: float) -> dict[str, Any]:
    """H.264 + AAC: shots of 4-16 s (hard cuts between four looks of ``vision_throughput.SyntheticClip``:
    panning texture, moving boxes, a caption 6 s of every 15 s, a face photo 10 s of every 30 s) and 16 kHz
    formant speech with pauses and music (``audio_throughput.speech_audio``)."""
    import bisect
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from fractions import Fraction

    import av
    import numpy as np
    from audio_throughput import SR, speech_audio
    from vision_throughput import SyntheticClip

    total = minutes * 60.0
    looks = [_look(SyntheticClip, k) for k in range(4)]
    for look in looks:
        look.frame(0.0, width, height)  # (each look's sized texture made once, before the threads share it)
    lengths = [4.0, 7.0, 10.0, 5.0, 13.0, 16.0, 6.0, 12.0]  # shots of 4-16 s, a cut every ~9 s
    cuts, t, k = [], 0.0, 0
    while t < total:
        t += lengths[k % len(lengths)]
        k += 1
        if t < total:
            cuts.append(t)
    audio, speech_s = speech_audio(minutes)
    fps_frac = Fraction(fps).limit_denominator(1001)
    n = int(round(total * fps))
    block = 1024

    def picture(f: int) -> Any:
        """Frame ``f``, already in the encoder's yuv420p: made on a pool thread, since converting a
        720p RGB picture takes 3-6 ms and releases the interpreter (in the encoder it ran one frame at
        a time and took most of the clip's minute on the GPU machine)."""
        t = f / fps
        img = looks[bisect.bisect_right(cuts, t) % len(looks)].frame(t, width, height)  # (the shot: cuts passed)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format="yuv420p")
        vf.pts, vf.time_base = f, Fraction(1) / fps_frac
        return vf

    workers = max(2, os.cpu_count() or 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container, ThreadPoolExecutor(workers) as pool:
        ahead: deque = deque()  # the next frames, in order, being made
        made = 0
        vs = container.add_stream("libx264", rate=fps_frac)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", "preset": "ultrafast", "g": str(int(fps * 2))}
        vs.thread_type = "AUTO"
        aus = container.add_stream("aac", rate=SR)
        aus.layout = "mono"
        a_pos = 0
        for f in range(n + 1):
            while made < n and len(ahead) < 2 * workers:
                ahead.append(pool.submit(picture, made))
                made += 1
            # audio up to this frame's time first, so the muxer never holds a long run of one stream
            a_end = audio.size if f == n else min(audio.size, int(f / fps * SR))
            while a_pos < a_end:
                chunk = audio[a_pos:a_pos + block]
                if chunk.size < block:
                    chunk = np.pad(chunk, (0, block - chunk.size))
                af = av.AudioFrame.from_ndarray(chunk.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = SR, a_pos, Fraction(1, SR)
                for packet in aus.encode(af):
                    container.mux(packet)
                a_pos += block
            if f == n:
                break
            for packet in vs.encode(ahead.popleft().result()):
                container.mux(packet)
        for stream in (vs, aus):
            for packet in stream.encode():
                container.mux(packet)
    return {"path": str(path), "seconds": n / fps, "frames": n, "fps": fps, "size": f"{width}x{height}",
            "hard_cuts": len(cuts), "speech_s": round(speech_s, 1), "bytes": path.stat().st_size}


def _place_file(src: Path, spec: Any, roots: Any) -> Path:
    """A file-source model (ultralytics / torch hub checkpoints) at its locator in the first folder the resolver reads."""
    target = roots.file_dirs(spec.source)[-1 if spec.source == "ultralytics" else 0] / spec.locator
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, target)
    return target


def _hf(folder: Path, spec: Any, roots: Any) -> Path:
    from framework.testing.llm import install_in_hf_cache

    return install_in_hf_cache(folder, spec.locator, roots.hf_hub, commit=spec.revision)


def seed_model(mid: str, spec: Any, roots: Any, build: Path, tiny: bool, device: str) -> tuple[Path, str]:
    """Build model ``mid`` (real size, random weights; or tiny) in its real format where the resolver looks.
    Returns (path, what was built)."""
    cuda = device.startswith("cuda")
    if mid == "qwen2-vl-7b-instruct":
        if tiny:
            import vlm_fixtures

            folder = build / mid
            folder.mkdir(parents=True, exist_ok=True)
            vlm_fixtures.make_qwen(folder, "2")
            return _hf(folder, spec, roots), "tiny Qwen2-VL (2 layers, hidden 64)"
        from vlm_throughput import install

        snap, params = install(mid, build, device, "bfloat16" if cuda else "float32")
        return snap, f"Qwen2-VL-7B architecture, {params / 1e9:.2f} B params"
    if spec.source == "whisper":
        from analyzers._speech.random_models import openai_whisper_checkpoint

        size = "test-tiny" if tiny else spec.locator
        return (openai_whisper_checkpoint(roots.whisper / f"{spec.locator}.pt", size),
                f"openai-whisper checkpoint, {size} dims")
    if mid == "wav2vec2-xlsr-speech-emotion":
        from analyzers._speech.random_models import wav2vec2_classifier_folder

        folder = wav2vec2_classifier_folder(build / mid, real_size=not tiny)
        return _hf(folder, spec, roots), "wav2vec2 classifier, " + ("tiny" if tiny else "XLSR-large (24 x 1024)")
    if mid == "ast-audioset":
        from analyzers._speech.random_models import ast_classifier_folder

        folder = ast_classifier_folder(build / mid, real_size=not tiny)
        return _hf(folder, spec, roots), "AST classifier, " + ("tiny" if tiny else "base, 527 labels")
    if mid in ("yolov8x", "yolov8s", "yolov8x-pose"):
        if tiny:
            import vision_fixtures as vf

            return _place_file(vf.tiny_yolo("pose" if "pose" in mid else "detect"), spec, roots), "YOLOv8n (tiny stand-in)"
        from vision_throughput import build_models

        analyzer = {"yolov8x": "object_detection", "yolov8s": "product_detection", "yolov8x-pose": "body_pose"}[mid]
        return _place_file(build_models(build / mid, [analyzer], device)[mid], spec, roots), f"{mid} from ultralytics' yaml"
    if mid == "segformer-b0-ade-512":
        if tiny:
            import vision_fixtures as vf

            return _hf(vf.tiny_segformer(), spec, roots), "tiny SegFormer"
        from vision_throughput import build_models

        return _hf(build_models(build / mid, ["background_segmentation"], device)[mid], spec, roots), "SegFormer mit-b0, 150 classes"
    if mid == "open-clip-vit-b-32":
        if tiny:
            import vision_fixtures as vf

            return _hf(vf.tiny_open_clip(), spec, roots), "tiny open_clip CLIP"
        from vision_throughput import build_models

        return _hf(build_models(build / mid, ["content_quality"], device)[mid], spec, roots), "CLIP ViT-B-32 (open_clip)"
    if mid in ("vit-age-classifier", "vit-face-expression"):
        if tiny:
            import face_fixtures as ff

            return _hf(ff.tiny_classifier("age" if "age" in mid else "expression"), spec, roots), "tiny ViT classifier"
        from face_throughput import build_models

        return _hf(build_models(build / "vit", False)[mid], spec, roots), "ViT-B/16 classifier"
    if mid == SUMMARY_MODEL:
        folder = build / mid
        if tiny:
            from framework.testing.llm import make_tiny_chat_model

            return _hf(make_tiny_chat_model(folder), spec, roots), "tiny Qwen2 chat model (2 layers, hidden 32)"
        if not cuda:
            raise RuntimeError("the real-size summary model is built on CUDA (bench/gpu_summary_llm.py); use --tiny on a CPU")
        from gpu_summary_llm import build_model

        folder, params = build_model(folder)
        return _hf(folder, spec, roots), f"Qwen2.5-1.5B architecture, {params / 1e9:.2f} B params"
    raise LookupError(f"bench/end_to_end_gpu.py has no builder for model {mid} ({spec.source})")


def prepare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Step 1 (in its own process): packages, the set, the clip, the models, the registry."""
    import yaml

    from framework.models import load_manifest
    from framework.models.roots import CacheRoots
    from framework.plugins import build_plugin_manager

    out: dict[str, Any] = {}
    device = "cuda:0" if args.device in ("cuda", "gpu") else args.device
    cuda = device.startswith("cuda")
    try:
        from machine import torch_machine

        out["machine"] = torch_machine(cuda)
    except Exception as exc:  # noqa: BLE001
        out["machine"] = f"{platform.node()}: {os.cpu_count()} CPUs ({type(exc).__name__}: {exc})"

    out["packages"] = probe_packages()
    for p in out["packages"]:
        print(f"  package {p['module']:<22} {'ok ' + (p['version'] or '') if p['ok'] else 'MISSING: ' + p['problem']}"
              + ("" if p["ok"] else f"  -> cannot run: {', '.join(p['analyzers'])}"), flush=True)

    names, deps, status = analyzer_set()
    out["analyzers"], out["depends_on"], out["original_status"] = names, deps, status
    print(f"  the set ({len(names)}): {', '.join(names)}", flush=True)

    clip = work / f"clip_{args.minutes:g}min_{args.width}x{args.height}.mp4"
    t0 = time.perf_counter()
    making = None  # the clip, made on a thread beside the models' seeding below (both untimed set-up)
    if clip.is_file() and (work / "clip.json").is_file():
        out["clip"] = json.loads((work / "clip.json").read_text())
        out["clip"]["make_s"] = 0.0
        print(f"  clip: {out['clip']} ", flush=True)
    else:
        maker = ThreadPoolExecutor(1, thread_name_prefix="make-clip")
        making = maker.submit(lambda: (make_clip(clip, args.minutes, args.width, args.height, args.fps),
                                       time.perf_counter() - t0))
        maker.shutdown(wait=False)

    host = build_plugin_manager(load_entrypoints=False)
    params = {n: dict(RANDOM_WEIGHT_PARAMS.get(n, {})) for n in names}
    wanted: list[str] = []
    for n in names:
        wanted += host.analyzers[n](params[n]).model_ids()
    if "fusion" in names:
        wanted.append(SUMMARY_MODEL)
    manifest = load_manifest(host=host)
    wanted = [m for m in manifest.with_requirements(dict.fromkeys(wanted)) if m in manifest]
    roots = CacheRoots.from_env()
    build = work / "build"
    seeded: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for mid in wanted:
        spec = manifest[mid]
        t0 = time.perf_counter()
        if spec.source == "bundled":
            seeded[mid] = bundled_entry(spec, roots)
        else:
            try:
                path, what = seed_model(mid, spec, roots, build, args.tiny, device)
                seeded[mid] = {"path": str(path), "what": what, "seconds": round(time.perf_counter() - t0, 1)}
            except Exception as exc:  # noqa: BLE001 - the runner will skip its analyzer; the report says why
                logger.warning("could not seed %s: %s: %s", mid, type(exc).__name__, exc)
                seeded[mid] = {"missing": f"{type(exc).__name__}: {exc}"[:300], "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  model {mid}: {seeded[mid]}", flush=True)
    shutil.rmtree(build, ignore_errors=True)  # the caches hold copies (the 7B was written straight into its cache)
    out["models"], out["seed_s"] = seeded, round(time.perf_counter() - t_all, 1)
    if making is not None:
        out["clip"], seconds = making.result()  # (a failure to make it is raised here)
        (work / "clip.json").write_text(json.dumps(out["clip"]))
        out["clip"]["make_s"] = round(seconds, 1)
        print(f"  clip (made beside the models): {out['clip']} ", flush=True)
    if cuda:
        import torch

        torch.cuda.empty_cache()

    # device auto on the GPU machine; on a CPU, auto would skip the VLM (no time estimate there), so cpu
    registry = {"version": 1, "device": "auto" if cuda else "cpu", "vram_budget_gb": None,
                "analyzers": {n: {"enabled": True, **({"params": params[n]} if params[n] else {})} for n in names}}
    (work / "registry.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    out["registry"], out["registry_device"] = str(work / "registry.yaml"), registry["device"]
    out["random_weight_params"] = {n: p for n, p in params.items() if p}
    return out


def bundled_entry(spec: Any, roots: Any, when: str = "") -> dict[str, Any]:
    """A model shipped inside a package, as the report lists it: where it is, or why it is missing."""
    from framework.models import find_model

    found = find_model(spec, roots)
    if found is None:
        return {"missing": f"not found: package {spec.locator} is not installed here"}
    return {"path": str(found.path), "what": f"bundled ({found.revision}{when})", "seconds": 0.0}


def refind_bundled(models: dict[str, dict[str, Any]]) -> None:
    """Models shipped inside a package that the preparing call lacked: found again in this call's packages."""
    from framework.models import load_manifest
    from framework.models.roots import CacheRoots

    manifest, roots = load_manifest(), CacheRoots.from_env()
    for mid, seeded in models.items():
        if mid in manifest and manifest[mid].source == "bundled" and "path" not in seeded:
            entry = bundled_entry(manifest[mid], roots, "; this call")
            if "path" in entry:
                models[mid] = entry


#: bench flags that set one registry key for the analyzers they name: flag -> (key, value, help)
REGISTRY_FLAGS = {
    "thread": ("own_process", False, "keep these analyzers threads of the run's process (registry.yaml own_process: "
                                     "false), e.g. --thread object_detection,product_detection, to compare"),
    "child": ("own_process", True, "run these analyzers in processes of their own (registry.yaml own_process: "
                                   "true), e.g. --child qwen2_vl_temporal, to compare"),
    "high-priority": ("gpu_stream_priority", "high", "give these analyzers a CUDA stream of the highest priority "
                                                  "(registry.yaml gpu_stream_priority: high), e.g. --high-priority "
                                                  "qwen2_vl_temporal, to compare"),
    "low-gpu-priority": ("gpu_stream_priority", "low", "make these analyzers' own processes MPS clients of "
                                                     "below-normal priority (registry.yaml gpu_stream_priority: low; "
                                                     "with --mps), e.g. --mps --low-gpu-priority "
                                                     "object_detection,product_detection, to compare"),
    "wait-for-video": ("wait_for_video", True, "start these audio-only analyzers when the video is decoded too, "
                                               "not as soon as the audio is (registry.yaml wait_for_video: true), "
                                               "e.g. --wait-for-video speech_flow, to compare"),
    "low-priority": ("cpu_priority", "low", "run these analyzers' processes at a lower CPU priority (registry.yaml "
                                            "cpu_priority: low), e.g. --low-priority speech_flow, to compare"),
    "load-first": ("load_first", True, "let these analyzers' model loads take the first load turn there is, before "
                                        "loads that could analyze at once (registry.yaml load_first: true), e.g. "
                                        "--load-first qwen2_vl_temporal, to compare"),
    "cpu": ("device", "cpu", "run these analyzers on the CPU (registry.yaml device: cpu), e.g. --cpu text_overlay "
                             "(rapidocr's detector on the CPU, as before the thirteenth session), to compare"),
}


def registry_variant(registry: Path, disable: list[str], settings: list[str],
                     keys: dict[str, dict[str, Any]] | None = None) -> Path:
    """A copy of ``registry`` with ``disable`` disabled, ``settings`` (``ANALYZER.PARAM=VALUE``, the
    value read as YAML) set, and ``keys`` (analyzer -> registry keys: ``own_process``, ``device``,
    from ``REGISTRY_FLAGS``) set, beside it as ``registry_variant.yaml``."""
    import yaml

    data = yaml.safe_load(registry.read_text())
    keys = keys or {}
    named = disable + [s.partition(".")[0] for s in settings] + list(keys)
    unknown = [n for n in named if n not in data["analyzers"]]
    if unknown:
        flags = "/".join(f"--{f}" for f in ("disable", "param", *REGISTRY_FLAGS))
        raise SystemExit(f"{flags}: {', '.join(unknown)} not in {registry} "
                         f"(it has: {', '.join(data['analyzers'])})")
    for n in disable:
        data["analyzers"][n]["enabled"] = False
    for n, values in keys.items():
        data["analyzers"][n].update(values)
    for setting in settings:
        name, _, rest = setting.partition(".")
        key, eq, value = rest.partition("=")
        if not key or not eq:
            raise SystemExit(f"--param {setting!r}: write ANALYZER.PARAM=VALUE, e.g. text_overlay.workers=6")
        data["analyzers"][name].setdefault("params", {})[key] = yaml.safe_load(value)
    out = registry.with_name("registry_variant.yaml")
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# --- step 2: the timed command ---------------------------------------------------------------------------
class TreePeak:
    """Polls the summed resident memory of a process and its children (psutil) every 0.2 s, and each one's CPU
    time (``cpu``: ``bench/cpu_samples.py``)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.cpu = CpuTimes()
        self.cli_pid: int | None = None  # the CLI under GNU time (the run's process), once seen
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        while not self._stop.wait(0.2):
            try:
                root = psutil.Process(self.pid)
                procs = [root] + root.children(recursive=True)
                if self.cli_pid is None:
                    self.cli_pid = next((p.pid for p in procs if "cli" in " ".join(p.cmdline()[1:3])), None)
                rss = 0
                for p in procs:
                    try:
                        if p.name() != "time":
                            rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, rss)
                self.cpu.sample(procs, time.time())
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self.thread.join()
        return self.peak


def run_cli(args: argparse.Namespace, work: Path, clip: str, registry: str, env: dict[str, str],
            timeout: float) -> dict[str, Any]:
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cli = [args.python, "-m", "cli", "run", clip, "--registry", registry, "--out", str(run_dir), "--no-progress",
           "--offline", "--json", "--vram-budget", args.vram_budget]
    if not args.device.startswith(("cuda", "gpu")):
        cli += ["--devices", "cpu"]
    if args.profile:
        cli += ["--profile", args.profile]  # run/profiles/NAME.txt: where each spent its time in the run
    if getattr(args, "mps", False):
        cli += ["--mps"]  # the run's own MPS server (framework.mps), its client count in the receipt
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    cmd = ([gnu_time, "-v", "-o", str(work / "time.txt")] if gnu_time else []) + cli
    print(f"  $ {' '.join(cmd)}", flush=True)
    t0, started_epoch = time.perf_counter(), time.time()
    with open(work / "cli.stdout", "wb") as so, open(work / "cli.stderr", "wb") as se:
        # its own process group: at the deadline GNU time and the CLI under it are stopped together
        sampler = GpuSampler(work) if getattr(args, "gpu_samples", False) else None
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=so, stderr=se, start_new_session=True)
        poll = TreePeak(proc.pid)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # as a user's Ctrl-C: the runner keeps the finished tracks in tracks/ (read by the report)
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=INTERRUPT_GRACE_S)
                rc = f"interrupted after {timeout:.0f} s (--deadline {args.deadline:g})"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = f"killed after {timeout + INTERRUPT_GRACE_S:.0f} s (--deadline {args.deadline:g})"
        peak_poll = poll.stop()
        gpu = sampler.stop() if sampler is not None else None
    wall, ended_epoch = time.perf_counter() - t0, time.time()
    time_v = (work / "time.txt").read_text(errors="replace") if (work / "time.txt").is_file() else ""
    peak_time = next((int(line.split(":")[-1]) * 1024 for line in time_v.splitlines()
                      if "Maximum resident set size" in line), None)
    return {"cmd": cli, "timed_with": "GNU time -v" if gnu_time else "psutil poll", "rc": rc, "wall_s": round(wall, 2),
            "started_epoch": started_epoch, "ended_epoch": ended_epoch,
            "peak_rss_time": peak_time, "peak_rss_poll": peak_poll or None, "run_dir": str(run_dir),
            "gpu_samples": None if sampler is None else {"util": gpu[0], "pmon": gpu[1], "missing": sampler.missing,
                                                         "main_pid": poll.cli_pid},
            "cpu_samples": {"cpu": poll.cpu, "main_pid": poll.cli_pid},
            "stdout": (work / "cli.stdout").read_text(errors="replace"),
            "stderr": (work / "cli.stderr").read_text(errors="replace")}


# --- step 3: the report ----------------------------------------------------------------------------------
def _cuda_graphs(data: dict) -> Any:
    """What a track says of its CUDA graphs: the description families' ``model_info``, fusion's ``fusion``."""
    for key in ("model_info", "fusion"):
        if isinstance(data.get(key), dict) and data[key].get("cuda_graphs") is not None:
            return data[key]["cuda_graphs"]
    return None


def _f(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{float(x):.{digits}f}"


def saved_tracks(run_dir: Path) -> dict[str, Any]:
    """The tracks a stopped run saved (``tracks/NAME.json``, written as each analyzer finishes)."""
    out = {}
    for f in sorted((run_dir / "tracks").glob("*.json")):
        try:
            out[f.stem] = json.loads(f.read_text())["track"]
        except (OSError, ValueError, KeyError):
            continue
    return out


def track_rows(results: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    tracks = results.get("tracks") or {}
    rows = []
    for name in names:
        t = tracks.get(name)
        if t is None:
            where = "results.json" if "run" in results else "tracks/ (the run was stopped before results.json)"
            rows.append({"analyzer": name, "status": "absent", "reason": f"no track in {where}"})
            continue
        r = t.get("receipt") or {}
        step = r.get("step") or {}
        rows.append({
            "analyzer": name, "status": t.get("status"), "reason": t.get("reason"),
            "device": (r.get("device") or t.get("device") or "-") + (" (own process)" if r.get("own_process") else ""),
            "variant": r.get("variant"),
            "models": ", ".join(f"{m.get('id')}" for m in t.get("models") or []),
            "load_s": r.get("load_s"), "analyze_s": r.get("analyze_s") or t.get("duration_s"),
            "analyze_at_s": r.get("analyze_at_s"), "load_at_s": r.get("load_at_s"), "load_wait_s": r.get("load_wait_s"),
            "cuda_graphs": _cuda_graphs(t.get("data") or {}),
            "prefill_rows": ((t.get("data") or {}).get("model_info") or {}).get("prefill_rows"),
            "prompt_tokens": (t.get("data") or {}).get("prompt_tokens"),
            "padding_tokens": (t.get("data") or {}).get("padding_tokens"),
            "busy_s": step.get("busy_s"), "items": step.get("items"),
            "prepared_ahead": step.get("prepared_ahead"), "prepared_ahead_at_s": r.get("prepared_ahead_at_s"),
            "step_split": {k: step[k] for k in ("busy_s", "preprocess_s", "postprocess_s", "wait_s") if k in step},
            "peak_vram_mb": r.get("peak_vram_mb") if r.get("peak_vram_mb") is not None else t.get("peak_vram_mb"),
            "measured_alone": r.get("measured_alone"),
            "batches": "/".join(str(b) for b in step.get("batch_sizes") or []),
            "fallbacks": "; ".join(list(r.get("fallbacks") or []) + list(step.get("fallbacks") or [])),
            "events": len(t.get("events") or []),
        })
    return rows


def missing_packages_of(name: str, prep: dict[str, Any]) -> list[str]:
    """The packages that do not import here and that ``name`` or what it depends on needs."""
    deps, seen, todo = prep.get("depends_on") or {}, set(), [name]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += [d for d in deps.get(n, []) if d != "*"]
    return [p["module"] for p in prep["packages"] if not p["ok"] and
            any(a in seen or a.startswith("*") for a in p["analyzers"])]


def around_runner(run: dict[str, Any], results: dict[str, Any]) -> str | None:
    """Where the whole command's time outside the runner's wall went: from the command's start to the runner's
    (``results.json``'s ``run.started_at``) and from the runner's end (that plus the receipt's ``wall_s``) to the
    command's; None when the run wrote no receipt."""
    info = results.get("run") or {}
    started, wall = info.get("started_at"), (info.get("receipt") or {}).get("wall_s")
    if started is None or wall is None or "started_epoch" not in run:
        return None
    before, after = started - run["started_epoch"], run["ended_epoch"] - (started + wall)
    return (f"{before:.1f} s from the command's start to the runner's (the interpreter, the CLI's imports, the "
            f"registry, the video's probe) and {after:.1f} s from the runner's end to the command's (the reports, "
            "subtitles and exports, the processes' exit)")


def _mib(b: int | None) -> str:
    return "-" if not b else f"{b / 2**20:.0f}"


def report(args: argparse.Namespace, argv: list[str], prep: dict[str, Any], run: dict[str, Any],
           load_before: str, work: Path, probe_ms: float | None = None) -> tuple[list[str], dict[str, Any]]:
    results_path = Path(run["run_dir"]) / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    partial = saved_tracks(Path(run["run_dir"])) if not results else {}
    if partial:  # stopped at the deadline: the tracks that finished before it
        results = {"tracks": partial}
    receipt = (results.get("run") or {}).get("receipt") or {}
    rows = track_rows(results, prep["analyzers"])
    for r in rows:  # a track that did not run because a package is missing here says which
        r["missing_packages"] = ", ".join(missing_packages_of(r["analyzer"], prep))
    not_ok = [r for r in rows if r["status"] != "ok"]
    clip = prep["clip"]
    vmin_gpumin = receipt.get("video_min_per_gpu_min")
    own_ratio = (clip["seconds"] / 60.0) / (run["wall_s"] / 60.0) if run["wall_s"] and run["rc"] == 0 else None
    peak, peak_by = ((run["peak_rss_time"], "GNU time -v") if run["peak_rss_time"] else
                     (run["peak_rss_poll"], "psutil poll of the process tree"))
    summary = (f"whole command {run['wall_s']:.1f} s wall (exit {run['rc']}) for {clip['seconds']:.0f} s of video; "
               f"peak RSS {_mib(peak)} MiB ({peak_by}); "
               f"video-min per GPU-min {_f(vmin_gpumin, 2)} (runner's receipt; target >= 20); "
               f"video-min per wall-min of the whole command {_f(own_ratio, 2)}; "
               + "".join(f"{d} busy {b * 100:.0f}%; " for d, b in (receipt.get("gpu_busy_fraction") or {}).items()
                         if b is not None)
               + f"runner's wall {_f(receipt.get('wall_s'))} s"
               + "".join(f", {k} {v:.1f} s" for k, v in (receipt.get("phases_s") or {}).items()) + "; "
               f"{len(rows) - len(not_ok)}/{len(rows)} analyzers ok")
    lines = [f"# End to end: the default set as one `framework run` ({'tiny models' if args.tiny else 'real-size random weights'}, "
             f"{args.device})", "",
             f"- command: `python bench/end_to_end_gpu.py {' '.join(argv)}`",
             f"- machine: {prep['machine']}; {cpu_model()}; load before {load_before}, after {load_text()}"
             + (f"; CPU probe {probe_ms:.1f} ms before (one core compiling fixed Python source: lower is faster)"
                if probe_ms is not None else "")
             + ("" if args.device.startswith("cuda") else " (a shared 2-core machine: other engineers run things on it)"),
             f"- clip: {clip['seconds']:.0f} s, {clip['size']} at {clip['fps']:g} fps, {clip['hard_cuts']} hard cuts, captions "
             f"and a face photo part of the time, {clip['speech_s']} s of formant speech (generated in {clip['make_s']} s, not timed)",
             f"- models seeded in {prep['seed_s']} s (not timed); work folder {work}",
             f"- timed command: `python {' '.join(run['cmd'][1:])}` (cwd: the work folder, with its own FRAMEWORK_HOME "
             f"and caches; HF_HUB_OFFLINE=1"
             + (f"; FRAMEWORK_GIL_SWITCH_MS={args.gil_switch_ms:g}" if getattr(args, "gil_switch_ms", None) else "")
             + "".join(f"; {item}" for item in getattr(args, "env", []))
             + (f"; every GPU process a client of the run's own MPS server (`framework run --mps`: "
                f"{(receipt.get('mps') or {}).get('client_connections')} client connections in its log)"
                if getattr(args, "mps", False) else "")
             + f"); registry: the set above, enabled with `device: {prep['registry_device']}`"
             + (f"; this run's variant of it: {prep['registry_changes']}" if prep.get("registry_changes") else ""),
             f"- timed run {run.get('order', 1)} in this work folder (on a fresh machine: its first runs have been "
             "its slowest)",
             f"- random-weight settings in the registry: {json.dumps(prep['random_weight_params'])}", "",
             f"**{summary}**", ""]
    around = around_runner(run, results)
    if around:
        lines += [f"Around the runner's wall: {around}.", ""]
    if args.tiny:
        lines += ["Tiny models on a CPU: these numbers prove the plumbing, and say nothing about the GPU target.", ""]
    missing_pk = [p for p in prep["packages"] if not p["ok"]]
    lines += ["## Packages", "", "| package | imports here | needed by |", "|---|---|---|"]
    lines += [f"| {p['module']} | {('yes ' + (p['version'] or '')) if p['ok'] else 'NO: ' + p['problem']} | "
              f"{', '.join(p['analyzers'])} |" for p in prep["packages"]]
    lines += ["", "## Models seeded", "", "| manifest id | built | seconds | where / why missing |", "|---|---|---|---|"]
    for mid, m in prep["models"].items():
        lines.append(f"| {mid} | {m.get('what', 'NOT SEEDED')} | {_f(m.get('seconds'))} | {m.get('path') or m.get('missing')} |")
    lines += ["", "## Analyzers (from results.json; from tracks/ when the run was stopped)", "",
              "| analyzer | status | device | variant | models | load from s | waited for its turn s | load s | "
              "analyze from s | analyze s | busy s | items | peak VRAM MB | batches | fallbacks | events |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak_v = _f(r.get("peak_vram_mb"), 0) + (" (shared)" if r.get("measured_alone") is False and
                                                  r.get("peak_vram_mb") is not None else "")
        lines.append(f"| {r['analyzer']} | {r['status']} | {r.get('device') or '-'} | {r.get('variant') or '-'} | "
                     f"{r.get('models') or '-'} | {_f(r.get('load_at_s'))} | {_f(r.get('load_wait_s'))} | "
                     f"{_f(r.get('load_s'), 2)} | "
                     f"{_f(r.get('analyze_at_s'))} | {_f(r.get('analyze_s'), 2)} | "
                     f"{_f(r.get('busy_s'), 2)} | {r.get('items') if r.get('items') is not None else '-'} | {peak_v} | "
                     f"{r.get('batches') or '-'} | {r.get('fallbacks') or '-'} | {r.get('events', '-')} |")
    graphs = [f"{r['analyzer']}: {r['cuda_graphs']}" for r in rows if r.get("cuda_graphs") is not None]
    lines += ["", "CUDA graphs (the tracks' own account): " + ("; ".join(graphs) or "none reported")]
    groups = [f"{r['analyzer']}: {r['prefill_rows']}"
              + (f", {r['padding_tokens']} padding tokens in its prefills beside {r['prompt_tokens']} of prompts"
                 if r.get("padding_tokens") is not None and r.get("prompt_tokens") else "")
              for r in rows if r.get("prefill_rows")]
    if groups:  # a batch prefilled in groups and decoded as one; on CUDA the memory after each phase (GB)
        lines += ["", "Prefill groups (the tracks' own account): " + "; ".join(groups)]
    # where a device step's time went: forward (busy), its CPU threads before and after, the device waiting
    steps = [f"{r['analyzer']}: " + ", ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in r["step_split"].items())
             + (f" ({r['prepared_ahead']} batch(es) prepared from {r['prepared_ahead_at_s']} s, while its model loaded)"
                if r.get("prepared_ahead") else "")
             for r in rows if r.get("step_split")]
    decode_stats = (results.get("run") or {}).get("decode") or {}
    joined = decode_stats.get("segments_joined") or []
    if joined:  # how early a prefix of the streams was complete (what analyzers could have started on)
        half = next((at for at, reached in joined if reached >= clip["seconds"] / 2), None)
        where = (f"{decode_stats['segment_processes']} worker processes" if decode_stats.get("segment_processes")
                 else "threads of the decoding process")
        lines += ["", f"Decode segments joined ([seconds into the decode, video seconds complete]; decoded on {where}): "
                  f"{joined}" + (f"; the first half of the video complete {half:.1f} s into the decode" if half is not None else "")]
    turns = receipt.get("load_turns") or []
    if turns:  # one load or warm-up import at a time: who held the turn when, and how long each had asked before
        lines += ["", "Load turns (who: began-ended s from the plan's end, waited s): " + "; ".join(
            f"{who} {began:.1f}-{ended:.1f} ({began - asked:.1f})" for who, asked, began, ended in turns)]
    lines += ["", "Device steps (seconds: forward `busy`, `preprocess` and `postprocess` on CPU threads, the device "
              "waiting for a batch `wait`): " + ("; ".join(steps) or "none reported")]
    lines += ["", "## Did not run", ""]
    lines += [f"- {r['analyzer']}: {r['status']}: {r.get('reason')}"
              + (f" (here: {r['missing_packages']} does not import)" if r.get("missing_packages") else "")
              for r in not_ok] or ["- none: every analyzer's track is ok"]
    if missing_pk:
        lines.append(f"- packages missing here: {', '.join(p['module'] for p in missing_pk)}")
    lines += ["", "## Run receipt (results.json `run.receipt`)", "", "```json", json.dumps(receipt, indent=1), "```"]
    if run["rc"] != 0 or not results:
        lines += ["", f"## The command failed (exit {run['rc']}); the end of its stderr", "", "```",
                  run["stderr"][-6000:], "```"]
    if run.get("gpu_samples") is not None:
        g = run["gpu_samples"]
        lines += [""] + report_lines(g["util"], g["pmon"], results, g["main_pid"], g["missing"])
    if run.get("cpu_samples") is not None:
        c = run["cpu_samples"]
        lines += [""] + cpu_report_lines(c["cpu"], results, c["main_pid"], os.cpu_count())
    lines += ["", "## GNU time -v / peak memory", "",
              f"peak RSS: {_mib(run['peak_rss_time'])} MiB (GNU time), {_mib(run['peak_rss_poll'])} MiB (psutil poll of the process tree)"]
    return lines, {"receipt": receipt, "rows": rows, "summary": summary, "results_found": "run" in results}


def count_timed_run(work: Path) -> int:
    """Which timed run in ``work`` this one is (1: the first): a fresh machine's first runs have been its
    slowest (bench/results/end_to_end_h200_contention.md), so a comparison should know the order."""
    tally = work / "timed_runs.txt"
    with tally.open("a", encoding="utf-8") as f:
        f.write(f"{time.time():.0f}\n")
    return len(tally.read_text(encoding="utf-8").splitlines())


def child_env(work: Path) -> dict[str, str]:
    """The environment of every step: each cache the resolver reads under ``work`` (see
    ``framework/models/roots.py``), the hub offline, no installed plugin, the repo importable."""
    offline_work_dir(work, "e2e_")  # FRAMEWORK_HOME, HF_HOME, HF_HUB_OFFLINE, FRAMEWORK_LOAD_PLUGINS
    env = dict(os.environ)
    for var, sub in (("HF_HUB_CACHE", "hf/hub"), ("XDG_CACHE_HOME", "xdg-cache"), ("TORCH_HOME", "torch"),
                     ("XDG_CONFIG_HOME", "xdg-config"), ("YOLO_CONFIG_DIR", "yolo"), ("EASYOCR_MODULE_PATH", "easyocr")):
        env[var] = str(work / sub)
        (work / sub).mkdir(parents=True, exist_ok=True)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    env["TRANSFORMERS_OFFLINE"] = "1"
    # ultralytics' weights folder (its default is ./weights, relative to the working directory)
    settings = work / "yolo" / "Ultralytics" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    if not settings.is_file():
        settings.write_text(json.dumps({"weights_dir": str(work / "yolo-weights")}))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python bench/end_to_end_gpu.py --device cuda --minutes 10 "
                                        "--out bench/results/end_to_end_h200.md")
    ap.add_argument("--device", default="cuda", help="cuda (the GPU machine) or cpu (with --tiny)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the generated clip")
    ap.add_argument("--tiny", action="store_true", help="tiny models (the tests' builders) instead of real sizes")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--vram-budget", default="auto", help="passed to framework run (auto, 24GB, ...)")
    ap.add_argument("--profile", default=None, metavar="NAMES",
                    help="passed to framework run: sample these analyzers' stacks (run/profiles/NAME.txt)")
    ap.add_argument("--gpu-samples", action="store_true",
                    help="sample the GPU's utilization (every 100 ms) and each process's share (every second) with "
                         "nvidia-smi during the timed command; the report averages them over the run's phases")
    ap.add_argument("--gil-switch-ms", type=float, default=None,
                    help="FRAMEWORK_GIL_SWITCH_MS for the timed command (experimental; default: Python's 5 ms)")
    ap.add_argument("--work-streams", choices=("on", "off"), default="on",
                    help="off: FRAMEWORK_WORK_STREAMS=0 for the timed command (every analyzer on the default CUDA "
                         "stream, as before the tenth session), to compare")
    ap.add_argument("--own-process", choices=("on", "cpu", "off"), default="on",
                    help="off: FRAMEWORK_OWN_PROCESS=0 for the timed command (every analyzer a thread of the run's "
                         "process, as before the tenth session); cpu: only CPU analyzers in processes of their own "
                         "(Whisper a thread, as before the twelfth), to compare")
    ap.add_argument("--disable", default="", metavar="NAMES",
                    help="with --reuse: time the command with these analyzers disabled in the registry (a "
                         "diagnosis: what the others take without them); the report says which")
    for flag, (_key, _value, text) in REGISTRY_FLAGS.items():
        ap.add_argument(f"--{flag}", default="", metavar="NAMES", help=f"with --reuse: {text}")
    ap.add_argument("--param", action="append", default=[], metavar="ANALYZER.PARAM=VALUE",
                    help="with --reuse: set an analyzer's parameter in the timed run's registry (repeatable), "
                         "e.g. --param text_overlay.workers=6; the report's registry line says so")
    ap.add_argument("--mps", action="store_true",
                    help="framework run --mps: the run's GPU processes as clients of an MPS server of the run's own "
                         "(nvidia-cuda-mps-control on PATH), e.g. --mps --low-gpu-priority "
                         "object_detection,product_detection,speech_transcription")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set an environment variable for the timed command (repeatable), e.g. --env "
                         "OMP_NUM_THREADS=4; the report's timed command line names it")
    ap.add_argument("--capture-beside", choices=("on", "off"), default="on",
                    help="off: FRAMEWORK_CAPTURE_BESIDE=0 for the timed command (CUDA graphs captured only while "
                         "no other analyzer is busy on the GPU, as before the eleventh session), to compare")
    ap.add_argument("--deadline", type=float, default=570.0,
                    help="seconds from the start by which the report must be written: the timed command is killed "
                         "in time for it (the GPU tool stops a call at 600 s)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the CLI")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: new, under /dev/shm when it has room)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the parsed numbers as JSON here")
    ap.add_argument("--prepare-only", action="store_true",
                    help="step 1 only (packages, set, clip, models) into --work; a later call times the command "
                         "with --reuse (one GPU call may be too short for both)")
    ap.add_argument("--reuse", action="store_true",
                    help="skip step 1: time the command on what --prepare-only left in --work")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    if (args.prepare_only or args.reuse) and args.work is None:
        ap.error("--prepare-only and --reuse need --work DIR (the folder the two calls share)")
    if args.prepare_only:
        os.environ.update(child_env(args.work))
        (args.work / "prepare.json").write_text(json.dumps(prepare(args, args.work), indent=1, default=str))
        return 0

    load_before = load_text()
    probe_ms = cpu_probe_ms()  # (before anything of this call starts)
    created = args.work is None
    work = offline_work_dir(args.work, "e2e_")
    env = child_env(work)
    if args.gil_switch_ms is not None:
        env["FRAMEWORK_GIL_SWITCH_MS"] = f"{args.gil_switch_ms:g}"
    if args.work_streams == "off":
        env["FRAMEWORK_WORK_STREAMS"] = "0"
    if args.own_process != "on":
        env["FRAMEWORK_OWN_PROCESS"] = "0" if args.own_process == "off" else "cpu"
    if args.capture_beside == "off":
        env["FRAMEWORK_CAPTURE_BESIDE"] = "0"
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            ap.error(f"--env {item!r}: give NAME=VALUE")
        env[name] = value
    t0 = time.perf_counter()
    print(f"[1/3] prepare (packages, set, clip, models) in {work}", flush=True)
    prep_cmd = [sys.executable, str(Path(__file__).resolve()), "--prepare-only", "--work", str(work)] + \
        [a for a in argv if a not in ("--keep",)]
    if args.reuse:
        rc: Any = 0 if (work / "prepare.json").is_file() else f"no prepare.json in {work}: run --prepare-only first"
    else:
        try:
            rc = subprocess.call(prep_cmd, env=env, cwd=work, timeout=max(60.0, args.deadline - 60.0))
        except subprocess.TimeoutExpired:
            rc = f"killed after {args.deadline - 60.0:.0f} s"
    if rc != 0 or not (work / "prepare.json").is_file():
        msg = (f"# End to end: prepare failed\n\n- command: `python bench/end_to_end_gpu.py {' '.join(argv)}`\n"
               f"- the prepare step (packages, clip, models) exited {rc} after {time.perf_counter() - t0:.0f} s; "
               "its output is above\n")
        print(msg, file=sys.stderr)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(msg, encoding="utf-8")
        return 2
    prep = json.loads((work / "prepare.json").read_text())
    if args.reuse:  # this call's packages (it may carry other wheels than the preparing one did)
        prep["packages"] = probe_packages()
        prep["machine"] = with_versions(prep["machine"], prep["packages"])
        refind_bundled(prep["models"])
    print(f"      prepared in {time.perf_counter() - t0:.1f} s (clip {prep['clip']['make_s']} s, models {prep['seed_s']} s)",
          flush=True)
    keys: dict[str, dict[str, Any]] = {}
    for flag, (key, value, _text) in REGISTRY_FLAGS.items():
        for n in filter(None, getattr(args, flag.replace("-", "_")).split(",")):
            keys.setdefault(n, {})[key] = value
    if args.disable or args.param or keys:
        disabled = [n for n in args.disable.split(",") if n]
        prep["registry"] = str(registry_variant(Path(prep["registry"]), disabled, args.param, keys))
        prep["registry_changes"] = "; ".join(filter(None, [
            f"disabled {', '.join(disabled)}" if disabled else "",
            "params " + ", ".join(args.param) if args.param else "",
            "keys " + ", ".join(f"{n}.{k}: {v}" for n, values in keys.items() for k, v in values.items()) if keys else ""]))
    print("[2/3] the timed command", flush=True)
    timeout = max(30.0, args.deadline - (time.perf_counter() - t0) - 10.0)
    run = run_cli(args, work, prep["clip"]["path"], prep["registry"], env, timeout)
    run["order"] = count_timed_run(work)
    print(f"      exit {run['rc']} after {run['wall_s']} s", flush=True)
    if run["rc"] != 0:
        print(run["stderr"][-4000:], file=sys.stderr)
    print("[3/3] report", flush=True)
    lines, parsed = report(args, argv, prep, run, load_before, work, probe_ms)
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"prepare": prep, "run": {k: v for k, v in run.items()
                                                                      if k not in ("stdout", "stderr", "gpu_samples", "cpu_samples")},
                                             **parsed}, indent=1, default=str))
    if created and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if run["rc"] == 0 and parsed["results_found"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
