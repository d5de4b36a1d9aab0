"""visual_effects on a generated clip whose effects are known to the frame (tests/effects_media.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzers._effects.layout import (_gray, _lines, _longest_runs, _rectangles, edge_persistence, find_inset,
                                       find_layout, find_window_layout, window_maps)
from effects_media import effects_clip, pan
from framework.runner import analyze


def run(video, folder, params=None):
    folder.mkdir(parents=True, exist_ok=True)
    registry = folder / "registry.yaml"
    registry.write_text(f"analyzers:\n  visual_effects: {{params: {params or {}}}}\n")
    result = analyze(video, registry_path=registry, out_dir=folder / "run", progress=False,
                     load_entrypoints=False, offline=True)
    return result.timeline.tracks


@pytest.fixture(scope="module")
def effects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("effects")
    clip = effects_clip(folder / "fx.mp4")
    return clip, run(clip.path, folder)


def test_each_effect_is_found_once_at_its_time(effects):
    clip, tracks = effects
    track = tracks["visual_effects"]
    assert track.status == "ok", track.reason
    assert tracks["cut_analysis"].status == "ok"  # pulled in for the shots
    found = {}
    for e in track.events:
        found.setdefault(e.label, []).append(e)
    expected = clip.truth
    assert set(found) == set(expected), [(e.label, e.start, e.end) for e in track.events]
    for label, [(start, end)] in expected.items():
        (event,) = found[label]
        tol = 0.05 if label in ("flash", "freeze", "black") else 0.15
        assert event.start == pytest.approx(start, abs=tol), label
        assert event.end == pytest.approx(end, abs=tol), label
        assert event.data["text"]
    assert found["flash"][0].data["frames"] == 3
    freeze = found["freeze"][0].data
    assert freeze["moved_before"] and freeze["moves_after"]
    assert found["slow_motion"][0].data["speed"] == pytest.approx(0.5, abs=0.08)
    split = found["split_screen"][0].data
    assert split["orientation"] == "vertical" and split["box"][0] == pytest.approx(0.5, abs=0.03)
    inset = found["picture_in_picture"][0].data["box"]  # the framed inset: x 184-296, y 92-156 of 320x180
    assert inset == pytest.approx([182 / 320, 90 / 180, 298 / 320, 158 / 180], abs=0.04)
    assert "orientation" not in found["picture_in_picture"][0].data
    assert track.data["counts"] == {label: 1 for label in expected}
    brightness = track.series_by_name("brightness")
    black = [v for t, v in zip(brightness.times, brightness.values) if 6.05 < t < 6.55]
    assert black and max(black) < 5


def test_params_change_the_result(effects, tmp_path):
    """Each effect's threshold drops it: a longer min_freeze_s the freeze, a higher flash_rise the
    flash, layout: false the split, min_black_s the black frames, slow_share the slow motion."""
    clip, _ = effects
    track = run(clip.path, tmp_path, {"min_freeze_s": 2.0, "flash_rise": 200.0, "layout": False,
                                      "min_black_s": 1.0, "slow_share": 0.9})["visual_effects"]
    assert track.status == "ok" and track.events == [], [(e.label, e.start) for e in track.events]


def test_a_still_picture_is_not_a_freeze(video_factory, tmp_path):
    from framework.testing.synth import ShotSpec

    truth = video_factory("still.mp4", shots=[ShotSpec(2.0, "static", look=0), ShotSpec(2.0, "pan", look=1)],
                          audio=False, text=None)
    track = run(truth.path, tmp_path)["visual_effects"]
    assert track.status == "ok" and not [e for e in track.events if e.label == "freeze"]


def test_layout_needs_independent_motion():
    """One picture panning has no split; the same picture cut in two with one half still has one
    (side by side, or stacked); two still halves show nothing that makes them independent."""
    def frames(kind):
        a, b = pan(0, 3.0), pan(1, 0.0)
        out = []
        for i in range(0, 48, 6):
            left = a(i)
            right = a(i) if kind == "one" else b(0)
            img = np.concatenate([left[:, :160], right[:, 160:]], axis=1)
            if kind == "still":
                img = np.concatenate([a(0)[:, :160], b(0)[:, 160:]], axis=1)
            out.append(img[::3, ::3][:60, :106])  # about the analyzer's 96 px
        return np.stack(out)

    assert find_layout(frames("one")) is None
    split = find_layout(frames("split"))
    assert split is not None and split.orientation == "vertical" and split.box[0] == pytest.approx(0.5, abs=0.05)
    assert find_layout(frames("still")) is None
    stacked = find_layout(np.ascontiguousarray(frames("split").transpose(0, 2, 1, 3)))
    assert stacked is not None and stacked.orientation == "horizontal" and stacked.box[1] == pytest.approx(0.5, abs=0.05)


def test_an_inset_needs_its_own_motion():
    """A framed inset moving its own way is found; the same frame around a window onto the panning
    background itself (one picture) is not, nor is a still inset."""
    bg, other = pan(4, -3.0), pan(5, 0.0, 2.0)

    def frames(kind):
        out = []
        for i in range(0, 48, 6):
            img = bg(i)
            inner = {"own": other(i), "same": bg(i), "still": other(0)}[kind][:64, :112]
            if kind == "same":
                inner = img[92:156, 184:296].copy()
            img[90:158, 182:298] = 255
            img[92:156, 184:296] = inner
            out.append(img[::3, ::3])  # 107x60, about the analyzer's 96 px
        return np.stack(out)

    found = find_inset(frames("own"))
    assert found is not None and found.kind == "pip"
    assert list(found.box) == pytest.approx([182 / 320, 90 / 180, 298 / 320, 158 / 180], abs=0.04)
    assert find_inset(frames("same")) is None
    assert find_inset(frames("still")) is None


def _window(kind):
    """Eight sampled frames (107x60, about the analyzer's 96 px) of a split ("split"), a framed inset
    ("inset", with a still left half: a split and an inset in one window) or one panning picture ("one")."""
    a, b, c = pan(0, 3.0), pan(1, 0.0, 2.0), pan(2, -3.0)
    out = []
    for i in range(0, 48, 6):
        img = a(i)
        if kind in ("split", "inset"):
            img[:, :160] = c(0 if kind == "inset" else i)[:, :160]
        if kind == "inset":
            img[90:158, 182:298] = 255
            img[92:156, 184:296] = b(i)[:64, :112]
        out.append(img[::3, ::3])
    return np.stack(out)


def test_shared_maps_give_the_same_layouts():
    """find_layout and find_inset on the window's maps computed once (what find_window_layout does)
    answer exactly as each does alone."""
    answers = []
    for kind in ("split", "inset", "one"):
        frames = _window(kind)
        for edge_min in (10.0, 6.5):
            maps = window_maps(frames, edge_min)
            split, inset = find_layout(frames, edge_min), find_inset(frames, edge_min)
            assert find_layout(frames, edge_min, maps=maps) == split
            assert find_inset(frames, edge_min, maps=maps) == inset
            assert find_window_layout(frames, edge_min) == (split or inset)
            answers.append((kind, edge_min, split is not None, inset is not None))
    assert ("split", 10.0, True, False) in answers and ("inset", 10.0, True, True) in answers
    assert ("one", 10.0, False, False) in answers
    assert find_window_layout(_window("split")[:2]) is None  # too few frames


def test_edge_maps_match_the_float_arithmetic():
    """int16 edge strengths and the summed grey give what float32 and mean(axis=-1) gave, bit for bit."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 20, 30, 3), dtype=np.uint8)
    frames[:, :, 10:] //= 16  # flat areas: strengths near the thresholds
    for edge_min in (10.0, 10.5, 11.0, 3.2):
        f = frames.astype(np.float32)
        gv = np.zeros(f.shape[:3], np.float32)
        gv[:, :, 1:-1] = np.abs(f[:, :, 2:] - f[:, :, :-2]).max(axis=-1)
        ev = gv >= edge_min
        ev[:, :, 1:-1] &= (gv[:, :, 1:-1] >= gv[:, :, :-2]) & (gv[:, :, 1:-1] >= gv[:, :, 2:])
        ev[:, :, 1:-1] = ev[:, :, 1:-1] | ev[:, :, :-2] | ev[:, :, 2:]
        pv, ph = edge_persistence(frames, edge_min)
        assert np.array_equal(pv, ev.mean(axis=0))
        assert np.array_equal(ph, edge_persistence(np.ascontiguousarray(frames.transpose(0, 2, 1, 3)), edge_min)[0].T)
    gray = _gray(frames)
    assert gray.dtype == np.float32 and np.array_equal(gray, frames.astype(np.float32).mean(axis=-1))


def test_longest_runs_and_lines_match_a_plain_loop():
    """Against the plain loops they replaced (kept as the reference in bench/effects_layout_speed.py)."""
    ref = _reference()
    rng = np.random.default_rng(1)
    for density in (0.1, 0.5, 0.9, 0.99):
        mask = rng.random((40, 50)) < density
        mask[:, 7] = True
        mask[:, 9] = False
        assert _longest_runs(mask).tolist() == [ref.ref_longest_run(mask[:, x]) for x in range(mask.shape[1])]
        for min_len, keep in ((1, 8), (6, 8), (20, 3), (1, 50)):
            assert _lines(mask, min_len, keep) == ref.ref_lines(mask, min_len, keep)


def _reference():
    """bench/effects_layout_speed.py: the layout code as it was before it was vectorised."""
    import importlib
    import sys

    bench = str(Path(__file__).resolve().parents[1] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("effects_layout_speed")


def test_inset_rectangles_match_the_nested_loops():
    """_rectangles lists the candidates, with their sides and cover, as the four nested loops did."""
    rng = np.random.default_rng(2)
    h, w = 54, 96
    for density, cover_min in ((0.97, 0.9), (0.8, 0.5)):
        sv, sh = rng.random((h, w)) < density, rng.random((h, w)) < density
        xs = [0, w - 1, *rng.choice(np.arange(3, w - 3), 8, replace=False).tolist()]
        ys = [0, h - 1, *rng.choice(np.arange(3, h - 3), 8, replace=False).tolist()]
        expected = []
        for x0 in xs:
            for x1 in xs:
                for y0 in ys:
                    for y1 in ys:
                        borders = [x0 == 0, x1 == w - 1, y0 == 0, y1 == h - 1]
                        if x1 - x0 < 14 or y1 - y0 < 8 or sum(borders) > 1:
                            continue
                        if not 0.03 <= (x1 - x0) * (y1 - y0) / (w * h) <= 0.4:
                            continue
                        sides = [c for c, b in zip((sv[y0:y1 + 1, x0].mean(), sv[y0:y1 + 1, x1].mean(),
                                                    sh[y0, x0:x1 + 1].mean(), sh[y1, x0:x1 + 1].mean()), borders)
                                 if not b]
                        if float(min(sides)) >= cover_min:
                            expected.append((x0, x1, y0, y1, len(sides), float(min(sides))))
        assert expected and _rectangles(sv, sh, xs, ys, 14, 8, cover_min) == expected


def test_the_reference_says_how_the_original_system_shipped_them():
    """scripts/gen_analyzer_docs.py renders the optional ``original_status`` class attribute."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "analyzers.md").read_text(encoding="utf-8")

    def section(name):
        start = page.index(f"## `{name}` (version")
        return page[start:page.index("\n## `", start + 5)]

    for name in ("visual_effects", "temporal_flow"):
        assert "- **active in the original system**" in section(name)
    assert "- **disabled in the original system** (disabled by default here too)" in section("temporal_consistency")
