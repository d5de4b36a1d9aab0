"""Whether this machine decodes H.264 on the GPU through PyAV's hwaccel (NVDEC), and how fast.

Prints a table: the decoder's libraries, the pixel format frames arrive in, whether the first frames'
luma matches the CPU decoder's (H.264 decoding is exact), and frames per second for the whole clip
decoded by one container and by N containers on threads (each a segment), on the CPU and on NVDEC.

    python bench/nvdec_probe.py CLIP --segments 8
"""
from __future__ import annotations

import argparse
import glob
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

LIB_DIRS = ('/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/local/nvidia/lib64', '/usr/lib/wsl/lib')


def opened(path: str, hw: bool):
    import av
    from av.codec.hwaccel import HWAccel

    kw = {"hwaccel": HWAccel("cuda", allow_software_fallback=False)} if hw else {}
    return av.open(path, **kw)


def decode_range(path: str, hw: bool, start_s: float, stop_s: float | None, scale: bool) -> tuple[int, str]:
    c = opened(path, hw)
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    fmt, n = "", 0
    if start_s > 0:
        c.seek(int(start_s / float(s.time_base)), stream=s, backward=True)
    for frame in c.decode(s):
        t = float(frame.pts * s.time_base)
        if stop_s is not None and t >= stop_s:
            break
        if t < start_s:
            continue
        fmt = frame.format.name
        if scale:
            frame.reformat(96, 54, "rgb24", threads=1).to_ndarray()
        n += 1
    c.close()
    return n, fmt


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--duration", type=float, default=600.0)
    args = ap.parse_args()
    import av

    print(f"PyAV {av.__version__}; hw devices {av.codec.hwaccel.hwdevices_available()}; "
          f"libnvcuvid: {[f for d in LIB_DIRS for f in glob.glob(d + '/libnvcuvid.so*')][:3]}")
    try:
        c_hw, c_sw = opened(args.clip, True), opened(args.clip, False)
        same, fmt = True, ""
        for i, (a, b) in enumerate(zip(c_hw.decode(video=0), c_sw.decode(video=0))):
            fmt = a.format.name
            ya, yb = a.to_ndarray(format="gray"), b.to_ndarray(format="gray")
            same = same and bool(np.array_equal(ya, yb))
            if i == 59:
                break
        print(f"hw frames arrive as {fmt}; luma of the first 60 frames equal to the CPU decoder's: {same}")
    except Exception as exc:  # noqa: BLE001 - the probe's answer
        print(f"hw decoding failed: {type(exc).__name__}: {exc}")
        return 1
    print("| decoder | containers | scale to 96x54 | frames | wall s | frames/s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for hw in (False, True):
        for n in (1, args.segments):
            for scale in (False, True):
                bounds = [(args.duration * i / n, args.duration * (i + 1) / n if i < n - 1 else None) for i in range(n)]
                c0, t0 = cpu_s(), time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    got = list(pool.map(lambda b: decode_range(args.clip, hw, b[0], b[1], scale), bounds))
                wall, frames = time.perf_counter() - t0, sum(g[0] for g in got)
                print(f"| {'NVDEC' if hw else 'CPU'} ({got[0][1]}) | {n} | {scale} | {frames} | {wall:.2f} | "
                      f"{frames / wall:.0f} | {cpu_s() - c0:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
