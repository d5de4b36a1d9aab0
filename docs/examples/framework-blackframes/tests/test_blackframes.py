"""The analyzer on a synthetic video whose black and frozen stretches are known exactly."""
import importlib.metadata

import pytest
from pydantic import ValidationError

import framework_blackframes
from framework.testing import AudioSegment, ShotSpec, make_video, run_analyzer


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """8 s: a still shot (0-2 s), a pan, then a 4 s fade through black centred on 4.5 s.

    Speech until 3.5 s and a tone from 5.5 s, so the black moment falls in silence.
    """
    shots = [ShotSpec(2.0, "static"), ShotSpec(2.5, "pan"),
             ShotSpec(3.5, "pan", transition="fade", transition_s=4.0)]
    audio = [AudioSegment(0.2, 3.5, "speech", freq=140.0), AudioSegment(5.5, 7.8, "tone")]
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", shots, audio=audio, text=None)


def run_plugin(video, tmp_path, params=None):
    """Run only this plugin's analyzer through the real pipeline; return its track."""
    return run_analyzer(framework_blackframes, video, tmp_path, "black_frozen", params)


def test_finds_the_still_shot_and_the_fade_through_black(clip, tmp_path):
    track = run_plugin(clip.path, tmp_path)
    assert track.status == "ok", track.reason
    frozen = [e for e in track.events if e.label == "frozen"]
    black = [e for e in track.events if e.label == "black"]
    assert len(frozen) == 1 and frozen[0].start == pytest.approx(0.0, abs=0.15)
    assert frozen[0].end == pytest.approx(2.0, abs=0.15)
    assert len(black) == 1 and black[0].start < 4.5 < black[0].end
    assert black[0].data["silent"] is True  # between the speech and the tone
    assert len(track.series_by_name("brightness").times) == pytest.approx(clip.duration * 10, abs=2)


def test_params_change_the_result(clip, tmp_path):
    track = run_plugin(clip.path, tmp_path, params={"black_level": 0.0, "min_duration": 2.5})
    assert track.events == []  # nothing is darker than 0, and no still lasts 2.5 s


def test_params_are_validated():
    with pytest.raises(ValidationError):
        framework_blackframes.BlackFrozenFrames.Params(fps=0)
    with pytest.raises(ValidationError):
        framework_blackframes.BlackFrozenFrames.Params(threshold=0.5)  # no such parameter


def test_the_entry_point_is_declared():
    eps = importlib.metadata.entry_points(group="framework")
    assert any(ep.name == "blackframes" and ep.value == "framework_blackframes" for ep in eps)
