"""content_quality / composition_analysis: the model-free measures against known pictures, a tiny
open_clip model saved in open_clip's folder format loaded with ``local-dir:``, one CLIP shared by
both analyzers, and the compact per-shot embeddings."""
from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
import vision_fixtures as vf

from analyzers._vision import clip as shared_clip
from analyzers._vision.common import decode_embeddings
from analyzers._vision.quality import balance, exposure, noise, sharpness, symmetry
from analyzers.composition_analysis import CompositionAnalysis
from analyzers.content_quality import ContentQuality
from framework import AnalyzerInputs, Event, Track


def test_measures_on_pictures_of_known_quality():
    rng = np.random.default_rng(0)
    sharp = vf.background(640, 360)(0)
    sharp = cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY)
    sharp[100:260:20, :] = 255  # hard edges
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    assert sharpness(sharp) > 10 * sharpness(blurred)
    flat = np.full((360, 640), 120, np.float64)
    for sigma in (3.0, 10.0):
        noisy = np.clip(flat + rng.normal(0, sigma, flat.shape), 0, 255).astype(np.uint8)
        assert noise(noisy) == pytest.approx(sigma, rel=0.15)
    assert noise(sharp) < 3.0  # texture and edges are not mistaken for noise
    dark = np.zeros((10, 10), np.uint8)
    dark[0, :5] = 255
    assert exposure(dark) == pytest.approx((0.05, 0.05, 0.95))
    mirror = np.tile(np.r_[np.arange(50), np.arange(50)[::-1]].astype(np.uint8), (20, 1))
    assert symmetry(mirror) == 1.0 and symmetry(np.tile(np.arange(100, dtype=np.uint8), (20, 1))) < 0.9
    left = np.zeros((100, 100), np.uint8)
    left[40:60, 5:25] = 255
    bx, by = balance(left)
    assert bx < -0.5 and abs(by) < 0.1


def streams_for(analyzer, folder, frames):
    out = {}
    for spec in analyzer.frame_specs():
        h0, w0 = frames[0].shape[:2]
        w, h = spec.output_size(w0, h0)
        fr = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]
        if spec.pix_fmt == "gray":
            fr = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in fr]
        out[spec] = vf.stream_of(folder, spec, fr)
    return out


def test_quality_per_shot_shares_one_clip_with_composition(tmp_path):
    folder = vf.tiny_open_clip()
    cq, ca = ContentQuality({"image_size": 32, "batch_size": 4}), CompositionAnalysis({"image_size": 32})
    before = shared_clip.loaded_count()
    cq.load("cpu", {"open-clip-vit-b-32": folder})
    ca.load("cpu", {"open-clip-vit-b-32": folder})
    try:
        assert ca.clip is cq.clip and shared_clip.loaded_count() == before + 1  # loaded once
        bg = vf.background(320, 180)
        sharp = [bg(i) for i in range(4)]
        for f in sharp:
            f[20:160:10, :] = 255  # hard edges
        blurry = [cv2.GaussianBlur(f, (0, 0), 6) for f in sharp]
        cuts = {"cut_analysis": Track(analyzer="cut_analysis", version="t", provides=["shots"],
                                      events=[Event(start=0, end=4, label="shot"), Event(start=4, end=8, label="shot")])}
        inputs = AnalyzerInputs(video=vf.meta(8.0, 320, 180), streams=streams_for(cq, tmp_path / "q", sharp + blurry),
                                upstream=cuts)
        track = cq.analyze(inputs)
        comp = ca.analyze(AnalyzerInputs(video=vf.meta(8.0, 320, 180), upstream=cuts,
                                         streams=streams_for(ca, tmp_path / "c", sharp + blurry)))
    finally:
        cq.unload()
        assert shared_clip.loaded_count() == before + 1  # composition still holds it
        ca.unload()
    assert shared_clip.loaded_count() == before and cq.clip is None
    first, second = track.events
    assert (first.start, first.end, second.start, second.end) == (0.0, 4.0, 4.0, 8.0)
    assert first.data["sharpness"] > 3 * second.data["sharpness"]
    assert "blurry" in second.data["issues"] and second.data["text"].startswith("blurry")
    for e in track.events:
        assert 0.0 <= e.data["quality"] <= 1.0 and 0.0 <= e.data["aesthetics"] <= 1.0 and e.data["frames"] == 4
    assert track.receipt["step"]["batch_sizes"] == [4]
    assert len(track.series_by_name("sharpness").values) == 8

    block = track.data["shot_embeddings"]
    assert set(block) == {"model", "dim", "times", "dtype", "vectors_b64"}
    assert block["model"] == "open-clip-vit-b-32" and block["dtype"] == "float16" and block["dim"] == 32
    assert block["times"] == [[0.0, 4.0], [4.0, 8.0]]
    raw = np.frombuffer(base64.b64decode(block["vectors_b64"]), dtype="<f2").reshape(2, 32)
    assert np.linalg.norm(raw.astype(np.float32), axis=1) == pytest.approx([1.0, 1.0], abs=2e-3)
    assert np.array_equal(decode_embeddings(block), raw.astype(np.float32))

    a, b = comp.events
    assert a.data["shot_size"] in a.data["shot_size_scores"] and sum(a.data["angle_scores"].values()) == pytest.approx(1, abs=1e-3)
    assert a.data["text"] == f"{a.data['shot_size']}, {a.data['angle']}"
    assert sum(comp.data["shot_sizes"].values()) == 2


def test_a_folder_in_another_format_is_refused(tmp_path):
    from framework import AnalyzerUnavailable

    (tmp_path / "config.json").write_text("{}")  # e.g. the transformers-format CLIP repo
    with pytest.raises(AnalyzerUnavailable, match="framework models pull open-clip-vit-b-32"):
        ContentQuality().load("cpu", {"open-clip-vit-b-32": tmp_path})
