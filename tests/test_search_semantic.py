"""Semantic search with tiny models built here and loaded by the real code from a Hugging Face cache
folder: a BERT-style sentence encoder (AutoModel + mean pooling) and an open_clip CLIP (text tower
for the query, image tower for shot embeddings). Random weights: these tests check the plumbing
(vectors, storage, ranking, fusion, times), never that the models understand anything."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from framework.library import Library, search
from framework.library.encoders import Encoders
from framework.library.extract import encode_shot_embeddings
from framework.timeline import Track
from library_helpers import fake_run, fake_video

COMMIT = "c" * 40
WORDS = ("a the red car at night harbour lighthouse keeper boat dog in snow city traffic rain white fur kite "
         "over sea blue bus morning").split()
TEXTS = [(0.0, 2.0, "a red car at night"), (2.0, 4.0, "a dog in snow"), (4.0, 6.0, "city traffic in the rain"),
         (6.0, 8.0, "a lighthouse keeper"), (8.0, 9.0, "a blue bus in the morning")]
CAPTIONS = ["a red kite over the sea", "a dog in snow", "city traffic at night"]


def _snapshot(hub, repo: str):
    folder = hub / f"models--org--{repo}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snap = folder / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    return snap


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A fake Hugging Face cache with org/tiny-minilm and org/tiny-clip, and a manifest naming them."""
    import open_clip
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-models")
    hub = root / "hub"
    minilm = _snapshot(hub, "tiny-minilm")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(minilm)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(minilm)
    clip = _snapshot(hub, "tiny-clip")
    (clip / "open_clip_config.json").write_text(json.dumps({"model_cfg": {
        "embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}}))
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that this first build has no weights yet
    torch.save(open_clip.create_model(f"local-dir:{clip}").state_dict(), clip / "open_clip_pytorch_model.bin")
    manifest = root / "models_manifest.yaml"
    manifest.write_text("version: 1\nmodels:\n" + "".join(  # open-clip-vit-b-32: content_quality's id, tiny here
        f"  {mid}:\n    source: huggingface\n    locator: org/{repo}\n    revision: null\n    license: mit\n"
        f"    task: {task}\n" for mid, repo, task in (
            ("tiny-minilm", "tiny-minilm", "sentence-similarity"),
            ("open-clip-vit-b-32", "tiny-clip", "zero-shot-image-classification"))))
    return {"hub": hub, "manifest": manifest, "minilm": minilm, "clip": clip}


@pytest.fixture
def models(tiny_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tiny_models["hub"]))
    monkeypatch.setenv("FRAMEWORK_MANIFEST", str(tiny_models["manifest"]))
    return tiny_models


def _reference_sentence_vectors(folder, texts):
    """Mean pooling written out independently of the library's encoder (numpy, per text)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for t in texts:
            ids = tok(t, return_tensors="pt")
            hidden = model(**ids).last_hidden_state[0].numpy()
            v = hidden.mean(axis=0)  # one text alone: no padding, so the plain mean
            out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_sentence_embeddings_rank_by_cosine_and_are_stored_once(models, tmp_path):
    lib = Library.open(tmp_path / "lib.db")
    first = lib.add_run(fake_run(tmp_path / "r1", fake_video(tmp_path / "one.mp4"), TEXTS[:3]))
    lib.add_run(fake_run(tmp_path / "r2", fake_video(tmp_path / "two.mp4"), TEXTS[3:]))
    enc = Encoders()
    query = "a dog at night in the rain"
    result = search(lib, query, mode="semantic", text_model="tiny-minilm", encoders=enc, limit=10)
    assert result.ranking == "sentence embeddings (tiny-minilm)" and result.rankers == [result.ranking]
    texts = [t for _, _, t in TEXTS]
    ref = _reference_sentence_vectors(models["minilm"], texts + [query])
    expected = [texts[i] for i in np.argsort(-(ref[:-1] @ ref[-1]), kind="stable")]
    assert [h.text for h in result.hits] == expected
    assert all(h.found_by == ["sentence embeddings"] for h in result.hits)
    assert lib.texts_without_vectors("tiny-minilm") == []
    assert lib.connection().execute("SELECT count(*) FROM text_vectors").fetchone()[0] == len(TEXTS)
    exact = search(lib, "a lighthouse keeper", mode="semantic", text_model="tiny-minilm", encoders=enc).hits[0]
    assert (exact.text, exact.video_name, exact.start) == ("a lighthouse keeper", "two.mp4", 6.0)
    assert exact.score == pytest.approx(1.0, abs=2e-3)  # the same text: cosine 1 (float16 storage)
    # a new run: only its texts are embedded; a removed video's moments are gone from the ranking
    lib.add_run(fake_run(tmp_path / "r3", fake_video(tmp_path / "three.mp4"), [(1.0, 2.0, "white fur in snow")]))
    assert [t for _, t in lib.texts_without_vectors("tiny-minilm")] == ["white fur in snow"]
    lib.remove(str(first.id))
    hits = search(lib, "a dog in snow", mode="semantic", text_model="tiny-minilm", encoders=enc).hits
    assert {h.video_name for h in hits} == {"two.mp4", "three.mp4"}


def test_hybrid_ranking_fuses_full_text_and_embeddings(models, tmp_path):
    lib = Library.open(tmp_path / "lib.db")
    lib.add_run(fake_run(tmp_path / "r1", fake_video(tmp_path / "one.mp4"), TEXTS))
    result = search(lib, "lighthouse keeper", text_model="tiny-minilm", encoders=Encoders())
    assert result.ranking == ("hybrid: full-text (SQLite FTS5, BM25) + sentence embeddings (tiny-minilm), "
                              "fused by reciprocal rank")
    top = result.hits[0]
    assert top.text == "a lighthouse keeper" and top.found_by == ["full-text", "sentence embeddings"]
    assert top.score == pytest.approx(2 / 61, abs=1e-6)  # first in both lists: 1/(60+1) twice
    assert any("no video in the library has shot embeddings" in n for n in result.notes)
    assert len(result.hits) == len(TEXTS)  # the embedding ranker brings in the moments without the words


def _clip_vectors(folder, texts=None, images=None):
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    with torch.no_grad():
        if texts is not None:
            v = model.encode_text(open_clip.get_tokenizer(f"local-dir:{folder}")(texts))
        else:
            v = model.encode_image(torch.stack([preprocess(im) for im in images]))
    return v.numpy()


def test_clip_text_to_image_over_shot_embeddings(models, tmp_path):
    """Shot vectors made from known captions by the same CLIP's text tower (stand-ins for image
    vectors: with random weights only identity is predictable) must rank the matching shot first."""
    lib = Library.open(tmp_path / "lib.db")
    spans = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.5)]
    emb = encode_shot_embeddings("open-clip-vit-b-32", spans, _clip_vectors(models["clip"], texts=CAPTIONS))
    quality = Track(analyzer="content_quality", version="1", data={"shot_embeddings": emb})
    video = lib.add_run(fake_run(tmp_path / "r1", fake_video(tmp_path / "snow.mp4"), [(2.5, 3.0, "white fur")],
                                 extra_tracks={"content_quality": quality}))
    result = search(lib, "a dog in snow", mode="semantic", text_model="tiny-minilm", encoders=Encoders())
    assert "CLIP text-to-image (open-clip-vit-b-32)" in result.rankers
    shots = [h for h in result.hits if h.kind == "shot"]
    assert (shots[0].start, shots[0].end, shots[0].analyzer) == (2.0, 4.0, "content_quality")
    assert shots[0].text == "white fur" and shots[0].video_id == video.id  # the text of a moment inside the shot
    assert sorted((h.start, h.end) for h in shots) == spans  # every shot ranked; the others in any order
    assert shots[0].link.endswith("#t=2.00")
    visual = [h for h in shots if h.start == 4.0][0]
    assert visual.text == "visual match"  # no text moment inside that shot


def test_image_embeddings_of_real_frames_go_through(models, tmp_path, video_factory):
    """The image tower on decoded frames (as content_quality does) -> the stored format -> search."""
    import av
    from PIL import Image

    from framework.testing.synth import default_shots

    truth = video_factory("frames.mp4", shots=default_shots(1.2))
    with av.open(str(truth.path)) as container:
        frames = [(f.time, f.to_image()) for i, f in enumerate(container.decode(video=0)) if i % 6 == 0]
    images = [im.convert("RGB").resize((48, 32), Image.BILINEAR) for _, im in frames]
    vectors = _clip_vectors(models["clip"], images=images)
    spans = [(round(t, 3), round(t + 0.2, 3)) for t, _ in frames]
    quality = Track(analyzer="content_quality", version="1",
                    data={"shot_embeddings": encode_shot_embeddings("open-clip-vit-b-32", spans, vectors)})
    lib = Library.open(tmp_path / "lib.db")
    lib.add_run(fake_run(tmp_path / "r", truth.path, [], duration=truth.duration,
                         extra_tracks={"content_quality": quality}))
    hits = search(lib, "a red car", mode="semantic", encoders=Encoders(), limit=50).hits
    assert sorted((h.start, h.end) for h in hits) == sorted(spans)
    stored = lib.shot_vectors("open-clip-vit-b-32")[4]
    assert stored.shape == vectors.shape and np.allclose(np.linalg.norm(stored, axis=1), 1, atol=2e-3)


def test_missing_or_mismatched_models_turn_a_ranker_off_with_the_reason(models, tmp_path, caplog):
    lib = Library.open(tmp_path / "lib.db")
    unknown = Track(analyzer="content_quality", version="1", data={"shot_embeddings": encode_shot_embeddings(
        "open-clip-vit-l-14", [(0.0, 1.0)], np.ones((1, 768)))})
    wrong_dim = Track(analyzer="other_clip", version="1", data={"shot_embeddings": encode_shot_embeddings(
        "open-clip-vit-b-32", [(0.0, 1.0)], np.ones((1, 16)))})
    broken = Track(analyzer="broken", version="1", data={"shot_embeddings": {"model": "open-clip-vit-b-32", "dim": 32,
                                                                          "times": [[0, 1]], "vectors": [1, 2]}})
    caplog.set_level(logging.WARNING, logger="framework.library.extract")
    lib.add_run(fake_run(tmp_path / "r", fake_video(tmp_path / "v.mp4"), [(0, 1, "a boat")],
                         extra_tracks={"content_quality": unknown, "other_clip": wrong_dim, "broken": broken}))
    assert "broken.data.shot_embeddings cannot be read" in caplog.text
    result = search(lib, "a boat", text_model="no-such-model", encoders=Encoders())
    notes = " ".join(result.notes)
    assert "'no-such-model' is not in the models manifest" in notes
    assert "open-clip-vit-l-14" in notes and "not in the models manifest" in notes
    assert "shot vectors have 16 dims, the model's text vectors 32" in notes
    assert result.ranking == "full-text (SQLite FTS5, BM25)" and result.hits[0].text == "a boat"


def test_content_quality_shot_embeddings_reach_clip_search(models, tmp_path, video_factory):
    """End to end: `framework run` with content_quality (its CLIP is the tiny one, under its real
    manifest id) adds the run to the library; CLIP search then ranks the run's shots."""
    from click.testing import CliRunner

    from cli import main
    from framework.testing.synth import default_shots

    video = video_factory("quality.mp4", shots=default_shots(1.8)).path
    registry = tmp_path / "registry.yaml"
    registry.write_text("exports: [html]\nanalyzers:\n  cut_analysis: {enabled: true}\n  content_quality:\n"
                        "    enabled: true\n    params: {fps: 5, image_size: 32, measure_width: 64, batch_size: 8}\n")
    out = CliRunner().invoke(main, ["run", str(video), "--registry", str(registry), "--out", str(tmp_path / "run"),
                                    "--library", str(tmp_path / "lib.db"), "--offline", "--no-progress", "--json"])
    assert out.stdout.strip(), out.output
    report = json.loads(out.stdout)
    assert report["tracks"]["content_quality"]["status"] == "ok", report
    lib = Library.open(tmp_path / "lib.db")
    shots = sorted((round(e["start"], 3), round(e["end"], 3))
                   for e in lib.events(report["library_id"], 0, 99, ["cut_analysis"]) if e["label"] == "shot")
    result = search(lib, "a bright red kite", mode="semantic", encoders=Encoders(), limit=50)
    assert "CLIP text-to-image (open-clip-vit-b-32)" in result.rankers
    found = sorted((round(h.start, 3), round(h.end, 3)) for h in result.hits if h.kind == "shot")
    assert found and set(found) <= set(shots) and {h.analyzer for h in result.hits if h.kind == "shot"} == {
        "content_quality"}
