#!/usr/bin/env bash
# The wheels the GPU machine's image lacks, for bench/end_to_end_gpu.py (and the other GPU benches), in three
# folders that each fit a device call's 64 MiB beside the working tree:
#   .whl   (call 1: --prepare-only builds the clip and the models, and warms librosa's numba caches beside)
#          av, pydantic, ultralytics, lap, openai-whisper, open_clip, librosa and its stack, and what they need
#          that the image does not have
#   .whl2  (call 2: the timed command)  transformers 5.23, tokenizers, silero-vad, rapidocr and its stack,
#          onnx2torch (the image has onnx)
#   .whl3  (the `faces` call, between the two: eye_tracking and age_estimation)  mediapipe 0.10.21, the last with
#          the legacy solutions and their bundled models, and protobuf 6.33: mediapipe 0.10.21 builds its graphs
#          with protobuf 4.25 or 6.x, not 5.29 (a text-format parse error) nor 7 (no FieldDescriptor.label), and the
#          image's onnx 1.23 wants protobuf >= 6.31.1. It runs on the image's numpy 2.5 (its metadata says numpy<2;
#          on this machine its detections and 478 landmarks on the test photo were the same as under numpy 1.26),
#          so it is installed without its dependencies, which the image has (matplotlib, opencv, absl-py, attrs,
#          flatbuffers).
# The image: Python 3.12, torch 2.11, transformers 5.17, numpy 2.5 (see the device tool's KINDS.md). Call 2
# installs on top of call 1 (/tmp/site stays while the machine is warm). The folders are git-ignored here.
#   bash bench/device_wheels.sh        # then, on the device: pip install --target /tmp/site .whl/*.whl (see docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
for d in .whl .whl2 .whl3; do
  mkdir -p "$d"
  grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
get() {  # folder, then pinned requirements: binary wheels for the image's Python
  local dest=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform any -d "$dest" "$@"
}
get .whl av==18.1.0 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types typing-inspection ultralytics==8.4.190 \
  ultralytics-thop lap==0.5.13 more-itertools open_clip_torch==3.3.0 ftfy wcwidth \
  librosa==0.11.0 soundfile cffi pycparser soxr audioread pooch platformdirs decorator
python3 -m pip wheel -q --no-deps -w .whl openai-whisper==20250625  # PyPI has only its sdist
get .whl2 transformers==5.23.0 tokenizers==0.23.3 silero-vad==6.2.3 rapidocr_onnxruntime==1.4.4 pyclipper shapely \
  onnx2torch==1.5.15
get .whl3 mediapipe==0.10.21 protobuf==6.33.6
du -sh .whl .whl2 .whl3
