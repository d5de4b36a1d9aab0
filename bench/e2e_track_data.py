"""Print chosen analyzers' track data from an end-to-end run's results.json (the device runs keep only $OUT).

    python bench/e2e_track_data.py /dev/shm/e2e/run/results.json speech_transcription voice_activity
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    for name in argv[1:]:
        track = results["tracks"].get(name)
        if track is None:
            print(f"{name}: no track")
            continue
        data = {k: v for k, v in track.get("data", {}).items() if not isinstance(v, (list, dict)) or k == "decoding"}
        print(f"{name}: status {track.get('status')}; data {json.dumps(data)}; receipt {json.dumps(track.get('receipt'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
