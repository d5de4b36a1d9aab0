#!/usr/bin/env bash
# Install everything, generate a sample video, analyze it, and say where the results are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p samples
[ -f samples/sample.mp4 ] || .venv/bin/framework sample samples/sample.mp4 --duration 20 --size 640x360
.venv/bin/framework run samples/sample.mp4 --out runs/sample "$@"
echo
echo "Results are in runs/sample/: results.json (everything), summary.md, report.html (open it in a browser),"
echo "cuts.csv and cuts.edl. Try your own video: .venv/bin/framework run /path/to/video.mp4"
