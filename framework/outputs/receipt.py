"""The run's receipt, as the report and summary.md show it: how each analyzer ran, and how fast.

Per analyzer: device (and whether it ran in a process of its own), variant, load and analyze time, when its analysis began (seconds from the
start of the executor's run: which analyzers ran side by side), the device's busy time, measured
peak VRAM, batch sizes and fallbacks (``Track.receipt``, written by the executor and the device
step). For the run: seconds of video per second of wall time, video-minutes per GPU-minute and
each GPU's busy fraction (``Timeline.run["receipt"]``).
"""
from __future__ import annotations

from typing import Any

from ..timeline import Timeline

COLUMNS = ("analyzer", "device", "variant", "load s", "analyze s", "analyze from s", "busy s", "peak VRAM MB",
           "batches", "fallbacks")


def _num(x: Any, digits: int = 2) -> str:
    return "" if x is None else f"{float(x):.{digits}f}"


def receipt_rows(timeline: Timeline) -> list[tuple[str, ...]]:
    """One row per analyzer that ran this time (reused tracks keep their first run's receipt)."""
    rows = []
    for name, t in timeline.tracks.items():
        r = t.receipt or {}
        if not r and t.status != "ok":
            continue
        step = r.get("step") or {}
        falls = list(r.get("fallbacks") or []) + list(step.get("fallbacks") or [])
        peak = r.get("peak_vram_mb")
        if peak is not None and r.get("measured_alone") is False:
            peak = f"{peak:.0f} (shared GPU)"
        elif peak is not None:
            peak = f"{peak:.0f}"
        device = str(r.get("device") or t.device or "") + (" (own process)" if r.get("own_process") else "")
        rows.append((name, device, str(r.get("variant") or ""),
                     _num(r.get("load_s")), _num(r.get("analyze_s")), _num(r.get("analyze_at_s"), 1),
                     _num(step.get("busy_s")),
                     peak or "", "/".join(str(b) for b in step.get("batch_sizes") or []), "; ".join(falls)))
    return rows


def run_line(timeline: Timeline) -> str:
    """``600 s of video in 30.4 s (19.7x real time); 19.7 video-min per GPU-min; cuda:0 busy 96%;
    plan 3.4 s, decode 10.0 s, analyzers 46.0 s; decoded in 16 segments by 8 worker processes; GPU processes
    clients of the run's own MPS server (10 client connections)``."""
    r = (timeline.run or {}).get("receipt") or {}
    if not r or not r.get("wall_s"):
        return ""
    parts = [f"{r.get('video_s', 0):.1f} s of video in {r['wall_s']:.1f} s"
             + (f" ({r['video_s_per_wall_s']:.1f}x real time)" if r.get("video_s_per_wall_s") else "")]
    if r.get("video_min_per_gpu_min") is not None:
        parts.append(f"{r['video_min_per_gpu_min']:.1f} video-min per GPU-min")
    busy = r.get("gpu_busy_fraction") or {}
    if busy:
        parts.append(", ".join(f"{d} busy {b * 100:.0f}%" for d, b in busy.items() if b is not None))
    phases = r.get("phases_s") or {}
    if phases:  # the analyzers' time counts from the executor's start (beside the decode, it includes it)
        parts.append(", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    decode = (timeline.run or {}).get("decode") or {}
    if decode.get("segments"):  # how the decode ran: in parallel segments, on threads or worker processes
        workers = decode.get("segment_processes")
        parts.append(f"decoded in {decode['segments']} segments"
                     + (f" by {workers} worker processes" if workers else " on threads"))
    mps = r.get("mps")
    if mps:  # ``framework.mps``: the run's GPU processes side by side under one MPS server
        parts.append("GPU processes clients of " + ("the run's own MPS server" if mps.get("own_server")
                                                    else f"the MPS server of {mps.get('pipe_directory')}")
                     + (f" ({mps['client_connections']} client connections)"
                        if mps.get("client_connections") is not None else ""))
    return "; ".join(parts)
