"""`framework finetune`: LoRA training of the description model on generated videos, on a CPU.

A tiny Qwen2-VL built in the real on-disk layout (``vlm_fixtures``) is fine-tuned for a few steps:
the training and validation losses fall, the adapter saves with its card, loads into the
description analyzer (``adapter: DIR`` and ``framework describe --adapter``) and changes what it
writes; an interrupted run resumes from its checkpoint and takes the same steps as an
uninterrupted one; bad data is reported as file:line before anything loads. Random weights:
the tests check losses, files and plumbing, never the words.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from vlm_fixtures import install, tiny_vlm  # noqa: F401  (a fixture)

from cli import main
from framework.errors import EXIT_CONFIG, EXIT_INPUT, ConfigError, InputError
from framework.testing.synth import ShotSpec, make_video

CAPTION = "a man walks a dog in a park"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four 4 s videos (two shots each) and a JSONL of whole-video and ranged samples."""
    root = tmp_path_factory.mktemp("finetune_data")
    lines = []
    for i in range(4):
        make_video(root / f"v{i}.mp4",
                   [ShotSpec(2.0, look=i % 3), ShotSpec(2.0, look=(i + 1) % 3)], fps=10.0, width=160, height=90,
                   audio=False, text=None)
        lines.append({"video": f"v{i}.mp4", "caption": CAPTION})
        lines.append({"video": f"v{i}.mp4", "start": 2.0, "end": 4.0, "prompt": "What is the setting?",
                      "caption": "the setting"})
    data = root / "data.jsonl"
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root, data


def config(model, data, out, **kw):
    from analyzers.vlm.finetune.train import FinetuneConfig

    base = dict(model=str(model), data=data, out=out, steps=6, lr=5e-3, rank=8, batch_size=2, val_split=0.25,
                frames=4, device="cpu", save_every=2)
    base.update(kw)
    return FinetuneConfig(**base)


# --- data ---------------------------------------------------------------------------------------
def test_bad_data_is_reported_as_file_and_line_before_training(clips, tmp_path):
    root, _ = clips
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([
        json.dumps({"video": str(root / "v0.mp4"), "caption": "fine"}),
        json.dumps({"video": "missing.mp4", "caption": "a caption"}),
        json.dumps({"video": str(root / "v1.mp4"), "caption": "   "}),
        json.dumps({"video": str(root / "v1.mp4"), "start": 1.0, "end": 9.5, "caption": "too long"}),
        json.dumps({"video": str(root / "v1.mp4"), "start": 3.0, "end": 2.0, "caption": "backwards"}),
        "{not json",
    ]) + "\n")
    res = CliRunner().invoke(main, ["finetune", "--model", "no-such-model", "--data", str(bad),
                                    "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert res.exit_code == EXIT_INPUT, res.output
    text = " ".join(res.output.split())
    assert f"{bad}:2: video {tmp_path / 'missing.mp4'} not found" in text
    assert f"{bad}:3: empty caption" in text
    assert f"{bad}:4: end 9.5 s is outside the video (v1.mp4 lasts 4.00 s)" in text
    assert f"{bad}:5: end 2 s is not after start 3 s" in text
    assert f"{bad}:6: not valid JSON" in text
    assert f"{bad}:1" not in text  # the good line is not blamed
    assert not (tmp_path / "out").exists()  # nothing was trained or written


def test_sharegpt4video_layout(clips, tmp_path):
    from analyzers.vlm.finetune.data import load

    root, _ = clips
    extracted = tmp_path / "mixkit_videos_1"  # the zip_folder, extracted beside the file
    extracted.mkdir()
    (extracted / "mixkit-0001.mp4").write_bytes((root / "v0.mp4").read_bytes())
    (tmp_path / "pexels-7.mp4").write_bytes((root / "v1.mp4").read_bytes())
    rows = [{"video_id": "mixkit-0001", "video_path": "mixkit-0001.mp4", "zip_folder": "mixkit_videos_1.zip",
             "timestamp": [0, 1], "captions": [{"idx": "0", "content": "the first part"},
                                               {"idx": "-1", "content": "The whole video: a summary."}]},
            {"video": "pexels-7.mp4", "conversations": [{"from": "human", "value": "<video>\nSummarize it."},
                                                        {"from": "gpt", "value": "A detailed summary."}]}]
    data = tmp_path / "sharegpt4video.json"
    data.write_text(json.dumps(rows))
    samples = load(data)
    assert [s.caption for s in samples] == ["The whole video: a summary.", "A detailed summary."]
    assert samples[0].video == extracted / "mixkit-0001.mp4" and samples[0].whole
    assert samples[1].prompt == "Summarize it." and samples[1].duration == pytest.approx(4.0, abs=0.1)
    (extracted / "mixkit-0001.mp4").unlink()
    with pytest.raises(InputError, match=r"entry 1: video .*mixkit-0001.mp4 not found"):
        load(data)


def test_frames_are_sampled_as_the_describer_samples_them(clips, tmp_path):
    from analyzers.vlm.finetune.data import extract_frames, read_samples, sampling_for

    _, data = clips
    samples = [s for s in read_samples(data) if s.video.name == "v0.mp4"]
    for s in samples:
        s.duration = 4.0
    sampling = sampling_for("qwen2_vl", "cpu", frames=4)
    assert (sampling.fps, sampling.frame_width) == (2.0, 448)  # Qwen2-VL's stream in the analyzer
    whole, ranged = extract_frames(samples, sampling, tmp_path / "frames")
    # whole video: the middles of four equal parts (as `framework describe`); a range: the frames in it
    assert whole.times == pytest.approx([0.5, 1.5, 2.5, 3.5], abs=0.01)
    assert ranged.times == pytest.approx([2.0, 2.5, 3.0, 3.5], abs=0.01)
    frames = ranged.frames()
    assert frames.shape == (4, 252, 448, 3) and frames.dtype.name == "uint8"
    again = extract_frames(samples, sampling, tmp_path / "frames")  # cached: no second decode
    assert again[1].frames_file == ranged.frames_file and again[1].times == ranged.times


# --- training, the adapter, --eval --------------------------------------------------------------------
def test_finetune_trains_saves_and_the_describer_uses_the_adapter(clips, tiny_vlm, tmp_path, monkeypatch):
    from analyzers.vlm.families.hf import HFFamily

    install(tiny_vlm("qwen2-vl"), "qwen2-vl-2b-instruct")
    _, data = clips
    out = tmp_path / "adapter"
    loads = []
    load_model = HFFamily.load_model
    monkeypatch.setattr(HFFamily, "load_model", lambda self, *a: loads.append(a[3]) or load_model(self, *a))
    res = CliRunner().invoke(main, ["finetune", "--model", "qwen2-vl-2b-instruct", "--data", str(data), "--out",
                                    str(out), "--steps", "12", "--lr", "5e-3", "--rank", "8", "--batch-size", "2",
                                    "--val-split", "0.25", "--frames", "4", "--device", "cpu", "--save-every", "6",
                                    "--eval", "--eval-tokens", "6"])
    assert res.exit_code == 0, res.output
    assert {"adapter_config.json", "adapter_model.safetensors", "finetune.json", "README.md", "eval.md"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "checkpoints").exists() and not (out / ".frames").exists()
    card = json.loads((out / "finetune.json").read_text())
    assert card["base_model"]["id"] == "qwen2-vl-2b-instruct" and card["base_model"]["revision"]
    assert card["method"] == "lora" and card["hyperparameters"]["rank"] == 8
    assert card["data"]["train_videos"] == 3 and card["data"]["val_videos"] == 1
    assert card["sampling"] == {"fps": 2.0, "frame_width": 448, "frames_per_chunk": 4}
    losses = [h["loss"] for h in card["history"]]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    r = card["results"]
    assert r["val_loss"] < r["val_loss_before"]
    table = (out / "eval.md").read_text()
    assert "| video | reference caption | base model | fine-tuned |" in table
    rows = [line for line in table.splitlines() if line.startswith("| v") and ".mp4" in line]
    assert len(rows) == card["data"]["val_samples"] == 2 and CAPTION in table
    ev = json.loads((out / "eval.json").read_text())
    assert any(s["base"] != s["finetuned"] for s in ev["samples"])
    assert loads == [None]  # --eval loaded the base model once (the adapter merged into it afterwards)

    # the analyzer with `adapter: DIR`: recorded in the track, and it changes the descriptions
    video = Path(ev["samples"][0]["video"])
    tracks = {}
    for name, adapter in (("base", None), ("tuned", str(out))):
        registry = tmp_path / f"{name}.yaml"
        params = {"model": "qwen2-vl-2b-instruct", "chunking": "fixed", "chunk_s": 2.0, "max_new_tokens": 6,
                  "frames_per_chunk": 4, **({"adapter": adapter} if adapter else {})}
        registry.write_text(yaml.safe_dump({"analyzers": {"qwen2_vl_temporal": {"enabled": True, "device": "cpu",
                                                                                "params": params}}}))
        from framework.runner import analyze

        result = analyze(video, registry_path=registry, out_dir=tmp_path / f"run-{name}", progress=False,
                         load_entrypoints=False, only=["qwen2_vl_temporal"])
        tracks[name] = result.timeline.tracks["qwen2_vl_temporal"]
        assert tracks[name].status == "ok", tracks[name].reason
    tuned = tracks["tuned"]
    assert tuned.data["adapter"] == str(out)
    assert tuned.data["adapter_card"]["base_model"] == "qwen2-vl-2b-instruct"
    assert tuned.data["adapter_card"]["val_loss"] == pytest.approx(r["val_loss"])
    assert [m.id for m in tuned.models] == ["qwen2-vl-2b-instruct"]  # a folder is not a manifest id
    assert [e.data["text"] for e in tuned.events] != [e.data["text"] for e in tracks["base"].events]

    res = CliRunner().invoke(main, ["describe", str(video), "--model", "qwen2-vl-2b-instruct", "--adapter", str(out),
                                    "--frames", "4", "--max-tokens", "4", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["adapter"] == str(out.resolve())

    # a finished adapter is not overwritten by accident
    res = CliRunner().invoke(main, ["finetune", "--model", "qwen2-vl-2b-instruct", "--data", str(data),
                                    "--out", str(out), "--device", "cpu"])
    assert res.exit_code == EXIT_CONFIG and "already holds a fine-tuned adapter" in " ".join(res.output.split())


def test_an_interrupted_run_resumes_from_its_checkpoint(clips, tiny_vlm, tmp_path):
    from safetensors.torch import load_file

    from analyzers.vlm.finetune.train import Hooks, TrainingInterrupted, finetune, latest_checkpoint

    _, data = clips
    model = tiny_vlm("qwen2-vl")
    straight = finetune(config(model, data, tmp_path / "straight"))

    def stop_at_3(step):
        if step == 3:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(TrainingInterrupted) as info:
        finetune(config(model, data, out), Hooks(after_step=stop_at_3))
    assert info.value.step == 3 and info.value.checkpoint == latest_checkpoint(out)
    assert latest_checkpoint(out).name == "step-3"  # saved on the interrupt (the last periodic one was step 2)
    with pytest.raises(ConfigError, match="holds an interrupted run"):
        finetune(config(model, data, out))
    with pytest.raises(ConfigError, match=r"lr \(0.005 -> 0.001\) changed"):
        finetune(config(model, data, out, resume=True, lr=1e-3))

    resumed = finetune(config(model, data, out, resume=True))
    assert resumed.resumed_from == 3
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    want = [h["loss"] for h in straight.history]
    assert [h["loss"] for h in resumed.history] == pytest.approx(want, rel=1e-4)  # the same steps as unbroken
    a = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-4 for k in a)
    assert resumed.card["results"]["val_loss"] == pytest.approx(straight.card["results"]["val_loss"], rel=1e-4)


def test_ctrl_c_in_the_command_saves_a_checkpoint_and_names_the_resume_command(clips, tiny_vlm, tmp_path,
                                                                                monkeypatch):
    from analyzers.vlm.finetune.model import Trainable

    _, data = clips
    model, out = tiny_vlm("qwen2-vl"), tmp_path / "adapter"
    real_loss, calls = Trainable.loss, []

    def loss(self, inputs):  # Ctrl-C during the third training step (the first call is the validation loss)
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_loss(self, inputs)

    monkeypatch.setattr(Trainable, "loss", loss)
    args = ["finetune", "--model", str(model), "--data", str(data), "--out", str(out), "--steps", "5",
            "--batch-size", "2", "--val-split", "0.25", "--frames", "2", "--device", "cpu"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 130, res.output
    text = " ".join(res.output.split())
    assert f"interrupted after step 2: checkpoint {out / 'checkpoints' / 'step-2'}" in text
    assert f"framework finetune --model {model} --data {data} --out {out} --resume" in text
    monkeypatch.setattr(Trainable, "loss", real_loss)
    res = CliRunner().invoke(main, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "finetune.json").read_text())
    assert [h["step"] for h in card["history"]] == [1, 2, 3, 4, 5]


def test_other_families_train_through_their_own_prompts(clips, tiny_vlm, tmp_path):
    from analyzers.vlm.finetune.train import finetune

    _, data = clips
    for kind in ("llava-next-video", "smolvlm"):
        r = finetune(config(tiny_vlm(kind), data, tmp_path / kind, steps=3, save_every=10, val_split=0.0))
        assert r.card["base_model"]["family"] in ("llava_next_video", "smolvlm")
        assert len(r.history) == 3 and r.history[-1]["loss"] < r.history[0]["loss"]
        assert (tmp_path / kind / "adapter_model.safetensors").is_file()


def test_qlora_without_bitsandbytes_says_what_to_do(clips, tmp_path):
    pytest.importorskip("torch")
    try:
        import bitsandbytes  # noqa: F401
        pytest.skip("bitsandbytes imports here")
    except Exception:  # noqa: BLE001
        pass
    _, data = clips
    res = CliRunner().invoke(main, ["finetune", "--model", "qwen2-vl-2b-instruct", "--data", str(data), "--out",
                                    str(tmp_path / "q"), "--method", "qlora"])
    assert res.exit_code == EXIT_CONFIG
    text = " ".join(res.output.split())
    assert "needs bitsandbytes" in text and "--method lora" in text


def test_adapter_param_takes_a_folder_or_a_manifest_id(tmp_path):
    from analyzers.vlm import SceneDescription

    folder = tmp_path / "my-adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"1")
    a = SceneDescription({"model": "qwen2-vl-2b-instruct", "adapter": str(folder)})
    assert a.model_ids() == ["qwen2-vl-2b-instruct"]
    b = SceneDescription({"model": "llava-next-video-7b", "adapter": "llava-next-video-genai-ft"})
    assert b.model_ids() == ["llava-next-video-7b", "llava-next-video-genai-ft"]
    before = a.params_hash()
    (folder / "adapter_model.safetensors").write_bytes(b"retrained")
    assert a.params_hash() != before  # a retrained adapter in the same folder is not resumed as the old one


def test_throughput_bench_cpu_path(tmp_path, monkeypatch):
    """bench/finetune_throughput.py's CPU path on its tiny configurations (the GPU run uses real sizes)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("finetune_throughput",
                                                  Path(__file__).resolve().parents[1] / "bench" / "finetune_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "report.md"
    monkeypatch.setattr(sys, "argv", ["finetune_throughput.py", "--device", "cpu", "--tiny", "--steps", "1",
                                      "--warmup", "0", "--batches", "2", "--clips", "2", "--clip-s", "2",
                                      "--work", str(tmp_path / "work"), "--out", str(report)])
    bench.main()
    text = report.read_text()
    for model in ("llava-next-video-7b", "qwen2-vl-7b-instruct"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {model} | ") and "| lora | 2 |" in line)
        steps_per_s = float(row.split("|")[7])
        assert steps_per_s > 0
    assert "QLoRA not run" in text or "| qlora |" in text
