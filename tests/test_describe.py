"""`framework describe`: seed 003's single-shot CLI on the framework (a tiny SmolVLM2 in the test's
Hugging Face cache, loaded by the real code; random weights, so the answer's words are not checked)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from vlm_fixtures import install, tiny_vlm  # noqa: F401  (a fixture)

from cli import main
from framework.errors import EXIT_MODEL
from framework.testing.synth import ShotSpec, make_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    shots = [ShotSpec(2.0, look=0), ShotSpec(2.0, look=1), ShotSpec(2.0, look=2)]
    return make_video(tmp_path_factory.mktemp("describe") / "clip.mp4", shots, fps=10.0, width=160, height=90,
                      audio=False, text=None)


def invoke(*args):
    return CliRunner().invoke(main, ["describe", *args])


def test_describe_writes_the_fields_of_seed_003(clip, tiny_vlm, tmp_path):
    install(tiny_vlm("smolvlm"), "smolvlm2-256m-video-instruct")
    out = tmp_path / "answer.json"
    res = invoke(str(clip.path), "--model", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "--frames", "4",
                 "--resize", "64", "--max-tokens", "5", "--prompt", "What colour is it?", "--json", "--out", str(out))
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r == json.loads(out.read_text())
    assert r["model"] == "smolvlm2-256m-video-instruct" and r["model_revision"]
    assert (r["prompt"], r["num_frames"], r["resize"], r["max_tokens"]) == ("What colour is it?", 4, 64, 5)
    assert isinstance(r["analysis"], str)
    assert r["inference_parameters"]["custom_prompt"] is True and r["inference_parameters"]["frame_size"] == [64, 36]
    times = r["frame_times"]
    # spread over the whole video: near the middles of four 1.5 s parts (0.75, 2.25, 3.75, 5.25 s)
    assert times == pytest.approx([0.75, 2.25, 3.75, 5.25], abs=0.2)
    t = r["timing"]
    assert t["model_load_time"] > 0 and t["inference_time"] > 0 and t["total_time"] >= t["inference_time"]
    assert r["video_info"]["duration_s"] == pytest.approx(6.0, abs=0.1) and r["video_info"]["width"] == 160
    assert {"file_size_mb", "last_modified"} <= set(r["video_info"])


def test_list_models_says_what_is_cached(tiny_vlm):
    install(tiny_vlm("smolvlm"), "smolvlm2-256m-video-instruct")
    res = invoke("--list-models", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert rows["smolvlm2-256m-video-instruct"]["cached"] is True
    assert rows["qwen2-vl-7b-instruct"]["cached"] is False and rows["qwen2-vl-7b-instruct"]["vram_gb"]["bf16"] > 10
    assert rows["llava-next-video-genai-ft"]["adapter_of"] == "llava-next-video-7b"
    res = invoke("--list-models")
    assert res.exit_code == 0 and "smolvlm2-256m-video-instruct" in res.output


def test_a_missing_model_offline_names_the_pull_command(clip):
    res = invoke(str(clip.path), "--model", "smolvlm2-2.2b-instruct", "--device", "cpu", "--offline")
    assert res.exit_code == EXIT_MODEL, res.output
    assert "framework models pull smolvlm2-2.2b-instruct" in " ".join(res.output.split())
    res = invoke(str(clip.path), "--model", "no-such-model")
    assert res.exit_code != 0 and "--list-models" in res.output
