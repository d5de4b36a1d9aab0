"""What decoding a frame costs against scaling it to each size of the end-to-end set's frame streams:
CPU milliseconds per frame, one thread, for swscale's AREA filter (the decode's) and two cheaper ones.

    python bench/scale_costs.py CLIP [--frames 60]

The decode pass (``framework.media``) decodes every frame once and scales the sampled ones for each stream
(``sinks.VideoSink``); this says which of those scalings weigh most beside the decoding itself.
"""
from __future__ import annotations

import argparse
import time

#: the end-to-end set's frame streams as (width, height, pixel format) for a 1280x720 clip
SIZES = {"fpsall_96": (96, 54, "rgb24"), "fps8_160 gray": (160, 90, "gray"), "fps5_640": (640, 360, "rgb24"),
         "fps2/fps1_960": (960, 540, "rgb24"), "fps2_448": (448, 252, "rgb24"), "fps2_160": (160, 90, "rgb24"),
         "fps2_64": (64, 36, "rgb24"), "fps1_512x512": (512, 512, "rgb24"), "fps1_640 gray": (640, 360, "gray"),
         "fps1_x224": (398, 224, "rgb24")}


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
    for name, (w, h, fmt) in SIZES.items():
        cells = []
        for interp in (Interpolation.AREA, Interpolation.BILINEAR, Interpolation.FAST_BILINEAR):
            r = VideoReformatter()
            r.reformat(frames[0], w, h, fmt, interpolation=interp, threads=1)  # (its swscale context made)
            t = time.process_time()
            for frame in frames:
                r.reformat(frame, w, h, fmt, interpolation=interp, threads=1).to_ndarray()
            cells.append(f"{1e3 * (time.process_time() - t) / len(frames):.2f}")
        rows.append(f"| scale to {w}x{h} {fmt} ({name}) | " + " | ".join(cells) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
