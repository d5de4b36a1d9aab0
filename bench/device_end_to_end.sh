#!/usr/bin/env bash
# The end-to-end benchmark on the lent GPU machine, as two device calls made back to back (the machine stays
# warm 30 s, and /dev/shm/e2e and /tmp/site with it). Wheels first, here: `bash bench/device_wheels.sh`.
#   call 1, carry [".whl"]:   bash bench/device_end_to_end.sh prepare            (~80 s: the clip beside the models)
#   call 2, carry [".whl2"]:  bash bench/device_end_to_end.sh time NAME [ARGS]   (~100-140 s per run)
# `time` writes $OUT/e2e_NAME.md (and the run's profiles, with --profile; with --gpu-samples its section on the GPU's
# load); several `time` runs fit one call, e.g.
#   bash bench/device_end_to_end.sh time head && bash bench/device_end_to_end.sh time threads --own-process off
# `prepare` warms the numba caches of speech_flow's 4 pitch workers beside the clip and the models (the first
# `time` does, if that failed), untimed and said so: a user pays that compile once, on the first run (44 s on
# 2 CPUs here), not on every run.
#   call 3 (or later), carry [".whl2"]: bash bench/device_end_to_end.sh tests TEST_FILES...   (pytest -m gpu)
# For the whole default set (24 analyzers: eye_tracking and age_estimation need mediapipe 0.10.21, which no call
# carries beside the other wheels), one more call between calls 1 and 2, carry [".whl3"] (~30 s):
#   bash bench/device_end_to_end.sh faces
# It installs mediapipe and protobuf 6.33 into /tmp/site (`bash bench/device_wheels.sh` says why those) and runs the
# face analyzers' CPU tests there (tests/test_eyes.py and tests/test_faces.py: the bundled models' real detections).
# To compare settings (a fresh machine's first runs have been its slowest, so the order matters),
# carry [".whl2"]:
#   bash bench/device_end_to_end.sh ab ROUNDS NAME_A "ARGS_A" NAME_B "ARGS_B" [NAME_C "ARGS_C" ...]
# one run left out first (warmup, with A's args), then ROUNDS rounds, in the order given in odd rounds and reversed
# in even ones (e2e_NAME_A_1.md ...), and bench/e2e_compare.py's table and medians; e.g. (5 runs, ~250 s)
#   bash bench/device_end_to_end.sh ab 2 pools4 "--env OMP_NUM_THREADS=4" default ""
# One pair gives one setting's runs and their median on this machine, e.g. (a warmup and 6 runs, ~300 s)
#   bash bench/device_end_to_end.sh ab 6 default "--gpu-samples"
set -o pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: device_end_to_end.sh prepare | faces | time NAME [bench args] | ab ROUNDS A "ARGS" B "ARGS" | tests FILES}
case "$what" in prepare|faces|time|ab|tests) ;; *) echo "unknown step $what: prepare, faces, time, ab or tests" >&2; exit 2 ;; esac
case "$what" in prepare) folder=.whl ;; faces) folder=.whl3 ;; *) folder=.whl2 ;; esac
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$folder"/*.whl || exit 3
# bytecode, as `pip install` writes by default (compiled here on all CPUs, untimed): without it the first run
# of a machine compiled transformers' sources on its first import (audio_environment's load took 15.7 s)
# The image's own site-packages (torch, numpy, triton...) came without bytecode: every process of a run compiled
# torch's sources again when it imported it (3.2 s of the plan's 5.3 s import of torch, under cProfile). Compiled
# here once per machine too; where that folder is read-only, into PYTHONPYCACHEPREFIX (exported for the runs).
image_site=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
[ -w "$image_site" ] || export PYTHONPYCACHEPREFIX=/tmp/pycache
t=$(date +%s); python3 -m compileall -q -j 0 /tmp/site framework analyzers cli > /dev/null 2>&1
if [ ! -f /tmp/.image_site_compiled ]; then  # (once per machine: 8-10 s even when nothing is left to compile)
  python3 -m compileall -q -j 0 "$image_site" > /dev/null 2>&1; touch /tmp/.image_site_compiled
fi
echo "bytecode compiled in $(( $(date +%s) - t )) s (not timed; image site-packages $image_site, prefix ${PYTHONPYCACHEPREFIX:-none})"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
out=${OUT:-/tmp/e2e_out}
mkdir -p "$out"
warm_numba() {  # numba's caches for speech_flow's pitch tracking (librosa.pyin) in its 4 workers, untimed
  [ -f /dev/shm/e2e/.numba_warm ] && return 0
  local t; t=$(date +%s); mkdir -p /dev/shm/e2e/xdg-cache
  # the timed run's numba caches: its XDG_CACHE_HOME (end_to_end_gpu.py's child_env), not this shell's
  XDG_CACHE_HOME=/dev/shm/e2e/xdg-cache python3 -c "import numpy as np; from framework import ProcessWorkers
y = (0.3 * np.sin(2 * np.pi * 150 * np.arange(16000) / 16000)).astype(np.float32)
w = ProcessWorkers('analyzers._speech.prosody:PitchTracker', (65.0, 400.0, 0.02), 4); w.map([y] * 4); w.close()" \
    && touch /dev/shm/e2e/.numba_warm
  echo "numba's caches for librosa.pyin in 4 pitch workers warmed in $(( $(date +%s) - t )) s (not timed)"
}
timed() {  # one timed run: NAME [bench args]; its report $out/e2e_NAME.md, its profiles beside it
  local name=$1; shift
  rm -f /dev/shm/e2e/gpu_util.csv /dev/shm/e2e/gpu_pmon.txt  # (--gpu-samples writes them anew)
  python3 bench/end_to_end_gpu.py --device cuda --minutes 10 --reuse --work /dev/shm/e2e --deadline 180 \
    --out "$out/e2e_$name.md" "$@" >> "$out/e2e.log" 2>&1
  local rc=$?
  # (nvidia-smi's raw samples stay in /dev/shm/e2e: the report has their summary, and a call brings back 8 files)
  for f in /dev/shm/e2e/run/profiles/*.txt; do [ -f "$f" ] && cp "$f" "$out/${name}_$(basename "$f")"; done
  grep -m1 "^\*\*whole command" "$out/e2e_$name.md"; return $rc
}
prepared() {  # STEP: pydantic and the framework's other packages come in .whl; a machine that ran no prepare lacks them
  python3 -c "import pydantic" 2>/dev/null && return 0
  echo "$1: this machine has not run 'prepare' (carry [\".whl\"]) yet: the framework's own packages are missing" >&2
  exit 3
}
case "$what" in
  prepare)
    # librosa's stack comes in .whl: its numba caches warm beside the clip and the models
    warm_numba > "$out/numba_warm.log" 2>&1 &
    warming=$!
    python3 bench/end_to_end_gpu.py --device cuda --minutes 10 --prepare-only --work /dev/shm/e2e > "$out/prepare.log" 2>&1
    rc=$?; wait $warming; tail -5 "$out/prepare.log"; tail -1 "$out/numba_warm.log"; exit $rc ;;
  faces)
    prepared faces
    python3 -c "import numpy, google.protobuf as p, mediapipe as m; print('numpy', numpy.__version__, 'protobuf', p.__version__, 'mediapipe', m.__version__)"
    timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_eyes.py tests/test_faces.py > "$out/face_tests.txt" 2>&1
    rc=$?; tail -15 "$out/face_tests.txt"; exit $rc ;;
  tests)
    prepared tests
    shift; timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider "$@" > "$out/gpu_tests.txt" 2>&1
    rc=$?; tail -25 "$out/gpu_tests.txt"; exit $rc ;;
  time)
    name=${2:?usage: device_end_to_end.sh time NAME [bench args]}; shift 2
    warm_numba  # (done by prepare already, unless it failed there)
    timed "$name" "$@"; exit $? ;;
  ab)
    rounds=${2:?usage: device_end_to_end.sh ab ROUNDS NAME_A "ARGS_A" [NAME_B "ARGS_B" ...]}
    shift 2
    names=(); argsets=()
    while [ $# -ge 2 ]; do names+=("$1"); argsets+=("$2"); shift 2; done
    [ ${#names[@]} -ge 1 ] && [ $# = 0 ] || { echo "ab: give NAME \"ARGS\" pairs, one or more" >&2; exit 2; }
    warm_numba
    # shellcheck disable=SC2086  # the ARGS strings split into flags on purpose
    timed "warmup" ${argsets[0]}; rc=0
    n=${#names[@]}
    for i in $(seq 1 "$rounds"); do  # odd rounds in the order given, even rounds reversed
      for j in $(seq 0 $((n - 1))); do
        k=$([ $((i % 2)) = 1 ] && echo "$j" || echo $((n - 1 - j)))
        # shellcheck disable=SC2086
        timed "${names[$k]}_$i" ${argsets[$k]} || rc=1
      done
    done
    reports=("$out"/e2e_warmup.md); for name in "${names[@]}"; do reports+=("$out"/e2e_"$name"_*.md); done
    # (the second table: where the analyzers' own time went, which the first's walls do not say)
    python3 bench/e2e_compare.py "${reports[@]}" --analyzers \
      voice_activity,audio_environment,speech_transcription,object_detection,text_overlay,background_segmentation,qwen2_vl_temporal,fusion \
      | tee "$out/ab_$(IFS=-; echo "${names[*]}").md"
    # the runs' reports and profiles (--profile, FRAMEWORK_PROFILE_START) in one file (a call brings back 8 files):
    # tar xzf reports.tgz
    (cd "$out" && shopt -s nullglob && txt=(*.txt) && tar czf reports.tgz e2e_*.md "${txt[@]}" && rm -f e2e_*.md "${txt[@]}")
    exit $rc ;;
esac
