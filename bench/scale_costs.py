"""What decoding a frame costs against scaling it to each size of the end-to-end set's frame streams:
CPU milliseconds per frame, one thread, for swscale's AREA filter (the decode's) and two cheaper ones.

    python bench/scale_costs.py CLIP [--frames 60]

The decode pass (``framework.media``) decodes every frame once and scales the sampled ones for each stream
(``sinks.VideoSink``); this says which of those scalings weigh most beside the decoding itself. The streams
are those the end-to-end set's analyzers ask for (``decode_phase.E2E_SET``), sized for the clip; streams of one
size and pixel format share a row (and, in the decode, a frame's scaling).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode_phase import E2E_SET  # noqa: E402 - bench/decode_phase.py


def stream_sizes(width: int, height: int) -> dict[tuple[int, int, str], list[str]]:
    """(width, height, pixel format) -> the keys of the end-to-end set's streams of that size."""
    from framework.outputs.thumbnails import thumbnail_spec
    from framework.plugins import build_plugin_manager

    host = build_plugin_manager(load_entrypoints=False)
    specs = {s for n in E2E_SET if n in host.analyzers
             for s in host.analyzers[n](host.analyzers[n].Params()).frame_specs()} | {thumbnail_spec()}
    sizes: dict[tuple[int, int, str], list[str]] = {}
    for spec in sorted(specs, key=lambda s: s.key):
        sizes.setdefault((*spec.output_size(width, height), spec.pix_fmt), []).append(spec.key)
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=60, help="frames scaled per size")
    ap.add_argument("--decoded", type=int, default=300, help="frames decoded to time the decoder")
    args = ap.parse_args()
    import av
    from av.video.reformatter import Interpolation, VideoReformatter

    with av.open(args.clip) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        frames, n = [], 0
        t = time.process_time()
        for n, frame in enumerate(container.decode(stream), 1):
            if len(frames) < args.frames:
                frames.append(frame)
            if n >= args.decoded:
                break
        decode_ms = 1e3 * (time.process_time() - t) / max(1, n)
    rows = ["| what | AREA ms | BILINEAR ms | FAST_BILINEAR ms |", "|---|---|---|---|",
            f"| decode one frame ({stream.codec_context.name}, {stream.width}x{stream.height}) | {decode_ms:.2f} | | |"]
    warm = VideoReformatter()  # untimed: the first pass over fresh frames costs ~4 ms a frame once
    for frame in frames:
        warm.reformat(frame, 96, 54, "rgb24", interpolation=Interpolation.AREA, threads=1).to_ndarray()
    for (w, h, fmt), keys in stream_sizes(stream.width, stream.height).items():
        cells = []
        for interp in (Interpolation.AREA, Interpolation.BILINEAR, Interpolation.FAST_BILINEAR):
            r = VideoReformatter()
            r.reformat(frames[0], w, h, fmt, interpolation=interp, threads=1)  # (its swscale context made)
            t = time.process_time()
            for frame in frames:
                r.reformat(frame, w, h, fmt, interpolation=interp, threads=1).to_ndarray()
            cells.append(f"{1e3 * (time.process_time() - t) / len(frames):.2f}")
        rows.append(f"| scale to {w}x{h} {fmt} ({', '.join(keys)}) | " + " | ".join(cells) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
