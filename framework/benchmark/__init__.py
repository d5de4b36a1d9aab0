"""``framework bench``: what this machine does, measured in a few minutes on media it generates.

- **decode**: probe + one ``media.decode`` pass of a generated clip (the shot detector's stream and a
  320 px RGB stream), frames per second;
- **cuts**: the analyzer that provides ``shots`` (``cut_analysis`` by default) on generated clips
  whose hard cuts are known exactly: precision, recall and F1 (frame-exact and within one frame),
  and frames per second with decoding;
- **analyzers**: each enabled analyzer (or ``--analyzers``) as a whole ``framework run --only NAME``
  process on the clip: its own seconds of video per second (``Track.receipt['analyze_s']``), the
  process's peak RSS (VmHWM polled from outside, so a parent's peak is never counted) and, on
  CUDA, its peak VRAM from the track's receipt; then all of them in one run;
- a table, and a JSON receipt (``bench.json``) beside a markdown copy (``bench.md``), each row
  compared with the published anchors of docs/benchmarks.md (``anchors.yaml`` in this package,
  each anchor with its source line and conditions).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger(__name__)

ANCHORS_FILE = Path(__file__).with_name("anchors.yaml")
#: an analyzer faster than this on the clip gets no rate (timer and bookkeeping noise dominate)
MIN_TIMED_S = 0.01


@dataclass
class BenchOptions:
    """What ``framework bench`` measures, and where it writes.

    :ivar minutes: length of the generated clip (``--minutes``).
    :ivar quick: a 6 s 320x180 clip, one decode and cut pass, no all-together run (seconds, not minutes).
    :ivar analyzers: the analyzers to time (None: those enabled in the registry).
    """

    out: Path
    minutes: float = 1.0
    quick: bool = False
    analyzers: list[str] | None = None
    registry_path: Path | None = None
    work: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        return (320, 180) if self.quick else (1280, 720)

    @property
    def seconds(self) -> float:
        return 6.0 if self.quick else max(6.0, self.minutes * 60.0)


# --- media -----------------------------------------------------------------------------------
def _shots(total: float, seed: int = 0) -> list[Any]:
    """A varied shot list: hard cuts mostly, a fade and a dissolve now and then, moving cameras."""
    from ..testing.synth import ShotSpec

    motions = ["static", "pan", "zoom", "tilt", "shake", "static", "pan"]
    shots, t, i = [], 0.0, 0
    while t < total - 1e-6:
        d = min(1.5 + ((i + seed) * 7 % 5) * 0.5, total - t)
        trans = "cut" if i % 4 else ("fade" if i % 8 == 0 else "dissolve")
        shots.append(ShotSpec(d, motions[(i + seed) % len(motions)], trans if d > 2 else "cut", 1.0, look=(i + seed) % 11))
        t += d
        i += 1
    return shots


def make_media(opts: BenchOptions) -> list[dict[str, Any]]:
    """The generated clips (cached in ``opts.work`` between runs), each with its known cuts."""
    from ..testing.synth import make_video

    work = opts.work or Path(tempfile.gettempdir()) / "framework-bench"
    work.mkdir(parents=True, exist_ok=True)
    w, h = opts.size
    specs = [("main", opts.seconds, w, h, 0)]
    if not opts.quick:
        specs.append(("dense", 20.0, 640, 360, 3))
    clips = []
    for name, seconds, cw, ch, seed in specs:
        path = work / f"bench_{name}_{seconds:g}s_{cw}x{ch}.mp4"
        meta = path.with_suffix(".json")
        if not (path.is_file() and meta.is_file()):
            logger.info("generating %s (%.0f s, %dx%d); kept for the next run", path, seconds, cw, ch)
            shots = _shots(seconds, seed) if name == "main" else _dense_shots(seconds)
            tmp = path.with_suffix(".partial.mp4")
            truth = make_video(tmp, shots, fps=30, width=cw, height=ch, text="BENCH")
            tmp.replace(path)
            meta.write_text(json.dumps({"fps": truth.fps, "cut_frames": truth.cut_frames,
                                        "frames": truth.frame_count, "duration": truth.duration}))
        clips.append({"name": name, "path": path, **json.loads(meta.read_text())})
    return clips


def _dense_shots(total: float) -> list[Any]:
    """Short shots (0.5-1.5 s), hard cuts only: a test of recall."""
    from ..testing.synth import ShotSpec

    shots, t, i = [], 0.0, 0
    while t < total - 1e-6:
        d = min(0.5 + (i * 3 % 3) * 0.5, total - t)
        shots.append(ShotSpec(d, ["pan", "static", "zoom"][i % 3], "cut", look=i % 11))
        t += d
        i += 1
    return shots


# --- decode and cuts (in this process) -------------------------------------------------------
def _shot_analyzer(opts: BenchOptions) -> Any:
    from ..plugins import build_plugin_manager
    from ..registry import find_registry, load_registry

    registry = load_registry(find_registry(opts.registry_path))
    host = build_plugin_manager(registry.plugin_dirs)
    configured = {c.name: c for c in registry.configure(host.analyzers, host)}
    names = [n for n, c in configured.items() if "shots" in (c.cls.provides or ())]
    if not names:
        return None
    return configured["cut_analysis" if "cut_analysis" in names else names[0]].instantiate()


def measure_decode(clip: dict[str, Any], specs: list[Any], repeat: int) -> dict[str, Any]:
    """Probe + one decode pass of ``specs`` (best of ``repeat``)."""
    from .. import media

    best = None
    for _ in range(repeat):
        cache = Path(tempfile.mkdtemp(prefix="framework-bench-"))
        try:
            t0 = time.perf_counter()
            meta = media.probe(clip["path"])
            media.decode(clip["path"], meta, specs, False, cache)
            s = time.perf_counter() - t0
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        best = s if best is None else min(best, s)
    return {"clip": clip["name"], "frames": clip["frames"], "seconds": round(best, 3),
            "fps": round(clip["frames"] / best, 1), "x_real_time": round(clip["duration"] / best, 2),
            "streams": [s.key for s in specs]}


def match_cuts(found: list[int], truth: list[int], tol: int) -> tuple[int, int, int]:
    """(TP, FP, FN), matching each found frame to at most one true cut within ``tol`` frames, closest first."""
    pairs = sorted((abs(f - t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth) if abs(f - t) <= tol)
    used_f: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    tp = len(used_f)
    return tp, len(found) - tp, len(truth) - tp


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 (1.0 when there was nothing to find and nothing was found)."""
    p = tp / (tp + fp) if tp + fp else (1.0 if not fn else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}


def measure_cuts(analyzer: Any, clip: dict[str, Any]) -> dict[str, Any]:
    """The shot analyzer on ``clip`` (decode included): its hard cuts against the known ones."""
    from .. import media
    from ..analyzer import AnalyzerInputs

    cache = Path(tempfile.mkdtemp(prefix="framework-bench-"))
    try:
        t0 = time.perf_counter()
        meta = media.probe(clip["path"])
        decoded = media.decode(clip["path"], meta, analyzer.frame_specs(), False, cache)
        t1 = time.perf_counter()
        track = analyzer.analyze(AnalyzerInputs(video=meta, streams=decoded.streams, work_dir=cache / "work"))
        t2 = time.perf_counter()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    fps = clip["fps"]
    found = sorted(int(round(e.start * fps)) for e in track.events if e.label == "cut")
    truth = list(clip["cut_frames"])
    return {"clip": clip["name"], "analyzer": analyzer.name, "frames": clip["frames"], "true_cuts": len(truth),
            "found_cuts": len(found), "exact": prf(*match_cuts(found, truth, 0)),
            "within_1_frame": prf(*match_cuts(found, truth, 1)),
            "seconds": round(t2 - t0, 3), "analyze_s": round(t2 - t1, 3), "fps": round(clip["frames"] / (t2 - t0), 1)}


# --- analyzers (whole processes) -------------------------------------------------------------
def _vmhwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_process(args: list[str], timeout: float = 900) -> tuple[int, str, str, float, float | None]:
    """Run ``args``; (exit code, stdout, stderr, wall s, peak RSS MB polled from /proc, None elsewhere)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err)
        peak = None
        while proc.poll() is None:
            kb = _vmhwm_kb(proc.pid)
            if kb is not None:
                peak = max(peak or 0, kb)
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                break
            time.sleep(0.05)
        proc.wait()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), wall,
                None if peak is None else round(peak / 1024, 1))


def measure_analyzers(names: list[str], clip: dict[str, Any], opts: BenchOptions, work: Path,
                      together: bool = True, on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Each analyzer as ``framework run CLIP --only NAME``, then (``together``) all of them in one run."""
    base = [sys.executable, "-m", "cli", "run", str(clip["path"]), "--no-progress", "--no-resume", "--no-library",
            "--offline", "--json"]
    if opts.registry_path is not None:
        base += ["--registry", str(opts.registry_path)]
    rows: list[dict[str, Any]] = []
    for name in names:
        if on_step:
            on_step(name)
        out = work / f"run_{name}"
        code, stdout, stderr, wall, rss = run_process(base + ["--only", name, "--out", str(out)])
        rows.append(_analyzer_row(name, clip, code, stdout, stderr, wall, rss, out))
    result: dict[str, Any] = {"clip": clip["name"], "video_s": clip["duration"], "rows": rows}
    if together and len(names) > 1:
        if on_step:
            on_step("all together")
        out = work / "run_all"
        code, stdout, stderr, wall, rss = run_process(base + ["--only", ",".join(names), "--out", str(out)])
        receipt = _read_receipt(out)
        result["together"] = {"analyzers": names, "exit_code": code, "process_wall_s": round(wall, 2),
                              "peak_rss_mb": rss, "run_wall_s": receipt.get("wall_s"),
                              "video_s_per_s": receipt.get("video_s_per_wall_s"),
                              "error": _last_line(stderr) if code not in (0, 5) else None}
    return result


def _read_receipt(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "results.json").read_text())["run"].get("receipt") or {}
    except (OSError, ValueError, KeyError):
        return {}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _analyzer_row(name: str, clip: dict[str, Any], code: int, stdout: str, stderr: str, wall: float,
                  rss: float | None, run_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"analyzer": name, "exit_code": code, "process_wall_s": round(wall, 2), "peak_rss_mb": rss}
    try:
        report = json.loads(stdout)
        track = report["tracks"][name]
    except (ValueError, KeyError, TypeError):
        row.update(status="error", note=_last_line(stderr) or f"exit code {code}")
        return row
    row["status"] = track["status"]
    if track["status"] != "ok":
        row["note"] = track.get("reason") or ""
        return row
    try:
        saved = json.loads((run_dir / "results.json").read_text())["tracks"][name]
    except (OSError, ValueError, KeyError):
        saved = {}
    receipt = saved.get("receipt") or {}
    seconds = receipt.get("analyze_s") or track.get("duration_s")
    row["analyze_s"] = round(float(seconds), 3) if seconds is not None else None
    if seconds is not None and float(seconds) < MIN_TIMED_S:
        row["video_s_per_s"] = None
        row["note"] = f"analyze took under {MIN_TIMED_S * 1000:.0f} ms: too short to give a rate"
    else:
        row["video_s_per_s"] = round(clip["duration"] / float(seconds), 2) if seconds else None
    row["device"] = receipt.get("device") or saved.get("device") or "cpu"
    row["peak_vram_mb"] = receipt.get("peak_vram_mb")
    return row


# --- anchors and the receipt ----------------------------------------------------------------
def load_anchors(path: Path = ANCHORS_FILE) -> list[dict[str, Any]]:
    """The published anchors (``anchors.yaml``), each with an expected value computed where given as times."""
    from ..yamlio import load_yaml

    data, _lines = load_yaml(path)
    anchors = []
    for a in data.get("anchors", []):
        a = dict(a)
        if "value" not in a and a.get("analyze_s"):
            a["value"] = round(float(a["video_s"]) / float(a["analyze_s"]), 1)
        anchors.append(a)
    return anchors


def compare(receipt: dict[str, Any], anchors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per anchor that this run measured: ours, the anchor, ours / anchor."""
    ours: dict[str, float | None] = {}
    decode = receipt.get("decode") or []
    if decode:
        ours["decode_fps"] = decode[0]["fps"]
    cuts = receipt.get("cuts") or []
    if cuts:
        ours["cut_f1"] = min(c["exact"]["f1"] for c in cuts)
    analyzers = receipt.get("analyzers") or {}
    for row in analyzers.get("rows", []):
        if row.get("video_s_per_s") is not None:
            ours[f"analyzer:{row['analyzer']}"] = row["video_s_per_s"]
    together = analyzers.get("together") or {}
    if together.get("video_s_per_s") is not None:
        ours["whole_cpu_set"] = together["video_s_per_s"]
    rows = []
    for a in anchors:
        if a["id"] not in ours or ours[a["id"]] is None:
            continue
        if a.get("analyzers") and set(a["analyzers"]) != set(together.get("analyzers") or ()):
            continue  # measured on another set of analyzers: not the same figure
        mine = float(ours[a["id"]])
        rows.append({"id": a["id"], "what": a.get("what", a["id"]), "ours": mine, "anchor": float(a["value"]),
                     "unit": a.get("unit", ""), "ratio": round(mine / float(a["value"]), 2) if a["value"] else None,
                     "conditions": a.get("conditions", ""), "source": a.get("source", "")})
    return rows


def machine() -> dict[str, Any]:
    """CPU model, cores, load, Python and the GPUs (torch is imported only when an NVIDIA driver is there)."""
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "gpus": []}
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi"):
        try:
            import torch

            if torch.cuda.is_available():
                info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception as exc:  # noqa: BLE001 - a broken torch: no GPU rows
            logger.debug("no GPU: %s", exc)
    return info


def selected_analyzers(opts: BenchOptions) -> list[str]:
    """``--analyzers``, else the analyzers enabled in the registry (checked against what is installed)."""
    from ..errors import ConfigError
    from ..plugins import build_plugin_manager
    from ..registry import find_registry, load_registry

    registry = load_registry(find_registry(opts.registry_path))
    host = build_plugin_manager(registry.plugin_dirs)
    configured = {c.name: c for c in registry.configure(host.analyzers, host)}
    if opts.analyzers:
        unknown = [n for n in opts.analyzers if n not in configured]
        if unknown:
            raise ConfigError(f"--analyzers: unknown analyzer {unknown[0]!r}; valid names: {', '.join(sorted(configured))}")
        return list(opts.analyzers)
    return [n for n, c in configured.items() if c.enabled]


def run_bench(opts: BenchOptions, on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure this machine; write ``bench.json`` and ``bench.md`` into ``opts.out``; return the receipt."""
    from ..streams import FrameSpec

    step = on_step or (lambda s: None)
    t0 = time.time()
    names = selected_analyzers(opts)
    receipt: dict[str, Any] = {"kind": "framework bench", "started_at": t0, "quick": opts.quick,
                               "machine": machine(), "options": {"minutes": opts.minutes, "analyzers": names}}
    step("generating media")
    clips = make_media(opts)
    receipt["media"] = [{k: (str(v) if isinstance(v, Path) else v) for k, v in c.items() if k != "cut_frames"}
                        | {"cuts": len(c["cut_frames"])} for c in clips]
    shots = _shot_analyzer(opts)
    repeat = 1 if opts.quick else 2
    step("decode")
    specs = sorted({*(shots.frame_specs() if shots else []), FrameSpec(width=320)}, key=lambda s: s.key)
    receipt["decode"] = [measure_decode(clips[0], specs, repeat)]
    if shots is not None:
        step("cut detection")
        receipt["cuts"] = [measure_cuts(shots, c) for c in clips]
    else:
        receipt["cuts"] = []
        receipt["notes"] = ["no installed analyzer provides shots: cut detection not measured"]
    work = Path(tempfile.mkdtemp(prefix="framework-bench-runs-"))
    try:
        receipt["analyzers"] = measure_analyzers(names, clips[0], opts, work, together=not opts.quick,
                                                 on_step=lambda n: step(f"analyzer {n}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    receipt["anchors"] = compare(receipt, load_anchors())
    receipt["duration_s"] = round(time.time() - t0, 1)
    receipt["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    write_receipt(opts.out, receipt)
    return receipt


def write_receipt(out: Path, receipt: dict[str, Any]) -> None:
    """``bench.json`` (everything) and ``bench.md`` (the tables) in ``out``."""
    from ..timeline import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    receipt["files"] = [str(out / "bench.json"), str(out / "bench.md")]
    atomic_write_text(out / "bench.json", json.dumps(receipt, indent=1, default=str))
    atomic_write_text(out / "bench.md", "\n".join(markdown(receipt)) + "\n")


def _fmt(x: Any, digits: int = 1) -> str:
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def markdown(receipt: dict[str, Any]) -> list[str]:
    """The receipt as markdown tables (what ``bench.md`` holds and the command prints)."""
    m = receipt["machine"]
    load = " / ".join(str(x) for x in m.get("load_average", [])) or "?"
    lines = [f"# framework bench{' --quick' if receipt.get('quick') else ''}", "",
             f"- machine: {m['cpus']} CPUs ({m['cpu']}), GPUs: {', '.join(m['gpus']) or 'none'}, "
             f"Python {m['python']}; load average at start {load}, at the end "
             f"{' / '.join(str(x) for x in m.get('load_average_end') or []) or '?'}",
             f"- took {receipt.get('duration_s', 0):.0f} s", ""]
    lines += ["## Decode", "", "| clip | frames | seconds | frames/s | x real time | streams |", "|---|---|---|---|---|---|"]
    for d in receipt.get("decode", []):
        lines.append(f"| {d['clip']} | {d['frames']} | {d['seconds']} | {d['fps']} | {d['x_real_time']} | "
                     f"{', '.join(d['streams'])} |")
    lines += ["", "## Cut detection (generated clips, known hard cuts)", "",
              "| clip | analyzer | true cuts | found | exact P / R / F1 | +-1 frame F1 | frames/s (decode included) |",
              "|---|---|---|---|---|---|---|"]
    for c in receipt.get("cuts", []):
        e = c["exact"]
        lines.append(f"| {c['clip']} | {c['analyzer']} | {c['true_cuts']} | {c['found_cuts']} | "
                     f"{e['precision']:.2f} / {e['recall']:.2f} / {e['f1']:.2f} | {c['within_1_frame']['f1']:.2f} | {c['fps']} |")
    a = receipt.get("analyzers") or {}
    lines += ["", f"## Analyzers (one `framework run --only NAME` process each, on the {a.get('clip', '?')} clip, "
              f"{a.get('video_s', 0):.0f} s)", "",
              "| analyzer | status | device | analyze s | video s per s | peak RSS MB (whole process) | peak VRAM MB | note |",
              "|---|---|---|---|---|---|---|---|"]
    for r in a.get("rows", []):
        lines.append(f"| {r['analyzer']} | {r['status']} | {r.get('device', '-')} | {_fmt(r.get('analyze_s'), 3)} | "
                     f"{_fmt(r.get('video_s_per_s'))} | {_fmt(r.get('peak_rss_mb'))} | {_fmt(r.get('peak_vram_mb'), 0)} | "
                     f"{r.get('note', '')} |")
    t = a.get("together")
    if t:
        lines += ["", f"All {len(t['analyzers'])} in one run: {_fmt(t.get('video_s_per_s'))} s of video per second "
                      f"(run {_fmt(t.get('run_wall_s'), 2)} s, process {_fmt(t.get('process_wall_s'), 2)} s, "
                      f"peak RSS {_fmt(t.get('peak_rss_mb'))} MB)" + (f"; error: {t['error']}" if t.get("error") else "")]
    lines += ["", "## Against the published anchors (docs/benchmarks.md)", ""]
    if receipt.get("quick"):
        lines += ["--quick measured a 6 s 320x180 clip, where start-up and fixed costs dominate; the anchors come "
                  "from 60 s 1280x720 clips: the ratios below say the command works, not how fast this machine is.", ""]
    lines += ["| measure | ours | anchor | ours / anchor | anchor measured on |", "|---|---|---|---|---|"]
    for r in receipt.get("anchors", []):
        lines.append(f"| {r['what']} | {r['ours']:g} {r['unit']} | {r['anchor']:g} {r['unit']} | {_fmt(r['ratio'], 2)} | "
                     f"{r['conditions']} |")
    for n in receipt.get("notes", []):
        lines += ["", f"Note: {n}"]
    return lines
