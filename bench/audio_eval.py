"""The audio analyzers on real third-party media with ground truth (../shared/media, see MEDIA.md).

- ``speech/jfk.flac`` (11 s, one speaker): voice-activity speech time; syllables found by
  speech_rate's nuclei against the 28 syllables of the sentence.
- ``speech/sample.wav`` against ``sample.rttm`` (the union of the speaker turns is the speech):
  agreement of voice_activity's speech/non-speech with it, as a percentage of time (10 ms frames),
  with missed speech and false alarms.
- ``video/auto_editor_example.mp4``: the non-silent total, which auto-editor's audio method
  (threshold 0.04 of the loudest sample, margin 0.2 s) puts at ~17.43 s: auto-editor's rule
  recomputed here on our decoded audio, audio_environment's non-silence, voice_activity's speech.
- ``video/big_buck_bunny_0_30.webm`` (no speech, music and effects): audio_environment's classes
  (feature fallback) and sound_effects' count.

Decoding goes through the framework's own single pass (16 kHz mono), as in a run.

    python bench/audio_eval.py --media ../shared/media --out bench/results/audio_eval.md
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model, load_text  # noqa: E402

SR = 16_000
FRAME = 0.01
JFK_SYLLABLES = 28  # "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def decode(path: Path, cache: Path):
    from framework import AnalyzerInputs, media

    meta = media.probe(path)
    decoded = media.decode(path, meta, [], True, cache / path.stem)
    return AnalyzerInputs(video=meta, audio=decoded.audio)


def run(analyzer, inputs, models=None):
    t = time.perf_counter()
    analyzer.load("cpu", models or {})
    track = analyzer.analyze(inputs)
    return track, time.perf_counter() - t


def mask(spans, duration: float) -> np.ndarray:
    m = np.zeros(int(round(duration / FRAME)), dtype=bool)
    for a, b in spans:
        m[int(round(a / FRAME)):int(round(b / FRAME))] = True
    return m


def rttm_speech(path: Path) -> list[tuple[float, float]]:
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            turns.append((float(f[3]), float(f[3]) + float(f[4])))
    return turns


def auto_editor_nonsilent(samples: np.ndarray, fps: float = 30.0, threshold: float = 0.04, margin: float = 0.2) -> float:
    """auto-editor's audio method: a timebase frame is loud when its largest absolute sample is at
    least ``threshold`` of the file's largest; loud runs grow by ``margin`` on both sides."""
    per = SR / fps
    n = int(np.ceil(samples.size / per))
    peak = np.abs(samples).max() or 1.0
    level = np.array([np.abs(samples[int(i * per):int((i + 1) * per)]).max(initial=0.0) for i in range(n)]) / peak
    loud = level >= threshold
    m = int(round(margin * fps))
    grown = loud.copy()
    for k in range(1, m + 1):
        grown[k:] |= loud[:-k]
        grown[:-k] |= loud[k:]
    return float(grown.sum() / fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch

    from analyzers._speech.audio import read
    from analyzers._speech.prosody import syllable_nuclei
    from analyzers.audio_environment import AudioEnvironment
    from analyzers.sound_effects import SoundEffects
    from analyzers.speech_rate import SpeechRate
    from analyzers.voice_activity import VoiceActivity
    from framework.models import ModelResolver, load_manifest

    silero = ModelResolver(load_manifest(), offline=True).resolve(["silero-vad"])[0]["silero-vad"].path
    out = io.StringIO()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp, redirect_stdout(out):
        cache = Path(tmp)
        print(f"machine: {cpu_model()}, {torch.get_num_threads()} torch threads; load average before: {load_text()}")
        print()

        # --- jfk.flac -------------------------------------------------------------------------
        jfk = decode(args.media / "speech" / "jfk.flac", cache)
        vad_track, vad_s = run(VoiceActivity(), jfk, {"silero-vad": silero})
        jfk.upstream = {"voice_activity": vad_track}
        segs = [(e.start, e.end) for e in vad_track.events]
        syl = sum(syllable_nuclei(read(jfk.audio, a, b)).size for a, b in segs)
        rate, _ = run(SpeechRate(), jfk)
        print("## speech/jfk.flac (11.0 s, one speaker)")
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| voice_activity speech time | {vad_track.data['speech_s']:.2f} s of {jfk.audio.duration:.2f} s "
              f"({len(segs)} segments: {', '.join(f'{a:.2f}-{b:.2f}' for a, b in segs)}) |")
        print(f"| syllable nuclei in the speech (speech_rate) | {syl} of {JFK_SYLLABLES} ({syl / JFK_SYLLABLES:.0%}) |")
        print(f"| speech_rate syllables/s, articulation rate | {rate.data['syllables_per_s']}, {rate.data['articulation_rate']} |")
        print(f"| voice_activity time (load + analyze) | {vad_s:.2f} s |")
        print()

        # --- sample.wav vs rttm ---------------------------------------------------------------
        sample = decode(args.media / "speech" / "sample.wav", cache)
        vad_track, vad_s = run(VoiceActivity(), sample, {"silero-vad": silero})
        duration = sample.audio.duration
        ref = mask(rttm_speech(args.media / "speech" / "sample.rttm"), duration)
        hyp = mask([(e.start, e.end) for e in vad_track.events], duration)
        n = min(ref.size, hyp.size)
        ref, hyp = ref[:n], hyp[:n]
        agree = float((ref == hyp).mean())
        missed = float((ref & ~hyp).sum() * FRAME)
        false_alarm = float((~ref & hyp).sum() * FRAME)
        print("## speech/sample.wav against sample.rttm (30 s, two speakers with overlap)")
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| reference speech (union of turns) | {ref.sum() * FRAME:.2f} s |")
        print(f"| voice_activity speech | {hyp.sum() * FRAME:.2f} s in {len(vad_track.events)} segments |")
        print(f"| speech/non-speech agreement | **{agree:.1%}** of {n * FRAME:.1f} s (10 ms frames, no collar) |")
        print(f"| missed speech / false alarm | {missed:.2f} s / {false_alarm:.2f} s |")
        print()

        # --- auto_editor_example.mp4 ----------------------------------------------------------
        clip = decode(args.media / "video" / "auto_editor_example.mp4", cache)
        vad_track, _ = run(VoiceActivity(), clip, {"silero-vad": silero})
        clip.upstream = {"voice_activity": vad_track}
        env, env_s = run(AudioEnvironment({"use_model": False}), clip)
        samples = read(clip.audio, clip.audio.start_time, clip.audio.start_time + clip.audio.duration)
        ae = auto_editor_nonsilent(samples)
        nonsilent = clip.audio.duration - env.data["seconds"]["silence"]
        print(f"## video/auto_editor_example.mp4 ({clip.audio.duration:.2f} s; MEDIA.md: non-silent ~17.43 s)")
        print()
        print("| measure | non-silent / speech total |")
        print("|---|---|")
        print(f"| auto-editor's rule (0.04 of peak, 0.2 s margin) recomputed on our 16 kHz mono decode | {ae:.2f} s |")
        print(f"| audio_environment: everything but `silence` (level under -45 dBFS, 0.5 s blocks) | {nonsilent:.2f} s |")
        print(f"| voice_activity speech | {vad_track.data['speech_s']:.2f} s "
              f"({', '.join(f'{e.start:.2f}-{e.end:.2f}' for e in vad_track.events)}) |")
        print(f"| audio_environment classes (s) | {env.data['seconds']} |")
        print()

        # --- big buck bunny ---------------------------------------------------------------------
        bbb = decode(args.media / "video" / "big_buck_bunny_0_30.webm", cache)
        vad_track, _ = run(VoiceActivity(), bbb, {"silero-vad": silero})
        bbb.upstream = {"voice_activity": vad_track}
        env, _ = run(AudioEnvironment({"use_model": False}), bbb)
        sfx, _ = run(SoundEffects({"use_model": False}), bbb)
        print("## video/big_buck_bunny_0_30.webm (30 s of animation: music and effects, no speech)")
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| voice_activity speech | {vad_track.data['speech_s']:.2f} s |")
        print(f"| audio_environment (features) seconds per class | {env.data['seconds']} |")
        print(f"| sound_effects (features) | {sfx.data['count']} sounds: {sfx.data['kinds']} |")
        print()
        print(f"total {time.time() - started:.1f} s; load average after: {load_text()}")
    text = out.getvalue()
    print(text)
    if args.out:
        cmd = "python bench/audio_eval.py " + " ".join(sys.argv[1:])
        args.out.write_text(f"# Audio analyzers on real media\n\nCommand: `{cmd}`\n\n{text}")


if __name__ == "__main__":
    main()
