"""`framework run` over many videos: files, folders and glob patterns; one run folder each; a
broken file among good ones; the summary table; a rerun skips finished, unchanged videos; every
finished run lands in the library."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from framework.library import Library
from framework.library.batch import MARKER
from framework.library.inputs import expand_inputs
from framework.testing.synth import default_shots, make_video
from library_helpers import write_registry

CAPTIONS = {"harbour": [[0.2, 0.8, "a lighthouse on the harbour wall"]],
            "forest": [[0.4, 1.0, "deer crossing a forest road"]],
            "city": [[0.1, 0.5, "taxis in the rain at night"]]}


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """footage/harbour.mp4, footage/sub/forest.mov, footage/broken.mp4 (not a video), notes.txt,
    a hidden folder and an old run folder (never inputs); elsewhere/city.mp4 for a glob pattern."""
    root = tmp_path_factory.mktemp("batch")
    footage = root / "footage"
    (footage / "sub").mkdir(parents=True)
    make_video(footage / "harbour.mp4", default_shots(1.0))
    make_video(footage / "sub" / "forest.mov", default_shots(1.2))
    (footage / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    (footage / "notes.txt").write_text("not media")
    (footage / ".hidden").mkdir()
    shutil.copy(footage / "harbour.mp4", footage / ".hidden" / "secret.mp4")
    (footage / "old-run").mkdir()
    (footage / "old-run" / "results.json").write_text("{}")
    shutil.copy(footage / "harbour.mp4", footage / "old-run" / "copy.mp4")
    (root / "elsewhere").mkdir()
    make_video(root / "elsewhere" / "city.mp4", default_shots(1.0), text="CITY")  # other content than harbour
    return root


def invoke(args, cwd: Path):
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(old)


def test_inputs_expand_folders_recursively_by_media_type_and_globs(footage):
    found = expand_inputs([footage / "footage", str(footage / "elsewhere" / "*.mp4"), footage / "missing.mp4",
                           footage / "footage" / "harbour.mp4"])  # the last is already in the folder
    names = [p.name for p in found]
    assert names == ["broken.mp4", "harbour.mp4", "forest.mov", "city.mp4", "missing.mp4"]
    assert expand_inputs([str(footage / "nothing-*.mp4")]) == [footage / "nothing-*.mp4"]  # kept: reported as missing
    empty = footage / "empty.mp4"
    empty.mkdir(exist_ok=True)
    assert expand_inputs([empty]) == [empty]  # a folder without media is kept, so the runner reports it


def test_many_videos_one_broken_then_a_rerun_skips_the_finished_ones(footage, tmp_path):
    registry = write_registry(tmp_path / "config", CAPTIONS)
    lib = tmp_path / "lib" / "library.db"
    args = ["run", footage / "footage", str(footage / "elsewhere" / "*.mp4"), "--registry", registry,
            "--out", tmp_path / "runs", "--library", lib, "--no-progress", "--json"]
    first = invoke(args, tmp_path)
    assert first.exit_code == 3, first.output  # the broken file's exit code; the others ran
    report = {Path(r["video"]).name: r for r in json.loads(first.stdout)}
    assert set(report) == {"broken.mp4", "harbour.mp4", "forest.mov", "city.mp4"}
    assert "not a video" in report["broken.mp4"]["error"]
    for name in ("harbour.mp4", "forest.mov", "city.mp4"):
        r = report[name]
        assert r["exit_code"] == 0 and not r["already_done"]
        assert r["tracks"]["test_captions"]["status"] == "ok" and r["tracks"]["cut_analysis"]["status"] == "ok"
        assert Path(r["run_dir"]) == (tmp_path / "runs" / Path(name).stem).resolve()
        assert (Path(r["run_dir"]) / MARKER).is_file()
    library = Library.open(lib)
    assert sorted(v.name for v in library.videos()) == ["city.mp4", "forest.mov", "harbour.mp4"]
    assert {v.name: v.id for v in library.videos()} == {n: report[n]["library_id"] for n in ("city.mp4", "forest.mov",
                                                                                             "harbour.mp4")}
    from framework.library import search

    hit = search(library, "lighthouse harbour", mode="text").hits[0]
    assert (hit.video_name, hit.start, hit.analyzer) == ("harbour.mp4", 0.2, "test_captions")

    results = {n: (Path(report[n]["results"])).stat().st_mtime_ns for n in ("harbour.mp4", "forest.mov", "city.mp4")}
    second = invoke(args, tmp_path)
    assert second.exit_code == 3
    again = {Path(r["video"]).name: r for r in json.loads(second.stdout)}
    assert all(again[n]["already_done"] for n in results)
    assert {n: Path(again[n]["results"]).stat().st_mtime_ns for n in results} == results  # nothing rewritten
    assert again["harbour.mp4"]["tracks"]["test_captions"]["status"] == "ok"

    # a changed file is analyzed again (the others are still skipped); so is everything with --no-resume
    forest = footage / "footage" / "sub" / "forest.mov"
    os.utime(forest, ns=(forest.stat().st_atime_ns, forest.stat().st_mtime_ns + 10**9))
    third = {Path(r["video"]).name: r for r in json.loads(invoke(args, tmp_path).stdout)}
    assert not third["forest.mov"]["already_done"] and third["harbour.mp4"]["already_done"]
    assert all(t["reused"] for t in third["forest.mov"]["tracks"].values())  # same content: tracks reused
    fourth = {Path(r["video"]).name: r for r in json.loads(invoke([*args, "--no-resume"], tmp_path).stdout)}
    assert not any(fourth[n]["already_done"] for n in results)
    assert Library.open(lib).count() == 3


def test_a_changed_registry_is_not_skipped_and_the_summary_table_lists_every_video(footage, tmp_path):
    registry = write_registry(tmp_path / "config", CAPTIONS)
    base = ["run", footage / "footage" / "harbour.mp4", footage / "footage" / "broken.mp4", "--registry", registry,
            "--out", tmp_path / "runs", "--library", tmp_path / "lib.db", "--no-progress"]
    first = invoke(base, tmp_path)
    assert first.exit_code == 3
    assert "2 videos" in first.output and "done" in first.output and "error" in first.output
    second = invoke(base, tmp_path)
    assert "already done" in second.output and "broken.mp4" in second.output
    lock = Path(os.environ["FRAMEWORK_HOME"]) / "models.lock.json"  # what `framework models pull` rewrites
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("{}")
    after_pull = json.loads(invoke([*base, "--json"], tmp_path).stdout)
    assert not next(r for r in after_pull if r["video"].endswith("harbour.mp4"))["already_done"]
    assert "already done" in invoke(base, tmp_path).output  # marked again with the new lock time
    changed = dict(CAPTIONS, harbour=[[0.1, 0.3, "a seagull on a mast"]])
    write_registry(tmp_path / "config", changed)
    third = invoke([*base, "--json"], tmp_path)
    harbour = next(r for r in json.loads(third.stdout) if r["video"].endswith("harbour.mp4"))
    assert not harbour["already_done"] and harbour["tracks"]["test_captions"]["reused"] is False
    assert Library.open(tmp_path / "lib.db").moments(harbour["library_id"])[0].text == "a seagull on a mast"


def test_no_library_leaves_the_library_alone(footage, tmp_path):
    registry = write_registry(tmp_path / "config")
    result = invoke(["run", footage / "elsewhere" / "city.mp4", "--registry", registry, "--out", tmp_path / "run",
                     "--library", tmp_path / "lib.db", "--no-library", "--no-progress", "--json"], tmp_path)
    assert result.exit_code == 0 and "library_id" not in json.loads(result.stdout)
    assert not (tmp_path / "lib.db").exists()


def test_another_vram_budget_or_device_list_is_not_the_finished_run(footage, tmp_path):
    """The budget decides which model variant the plan picks, so a run under another one is not
    finished; its tracks are still reused where their inputs did not change."""
    registry = write_registry(tmp_path / "config", CAPTIONS)
    base = ["run", footage / "footage" / "harbour.mp4", "--registry", registry, "--out", tmp_path / "runs",
            "--library", tmp_path / "lib.db", "--no-progress", "--json"]

    def done(*extra):
        return json.loads(invoke([*base, *extra], tmp_path).stdout)  # one video: one object

    first = done("--vram-budget", "12GB")
    assert not first["already_done"]
    assert done("--vram-budget", "12GB")["already_done"]
    bigger = done("--vram-budget", "24GB")
    assert not bigger["already_done"]
    assert all(t["reused"] for t in bigger["tracks"].values())  # nothing here depends on the GPU
    assert not done("--vram-budget", "24GB", "--devices", "cpu")["already_done"]
    assert done("--vram-budget", "24GB", "--devices", "cpu")["already_done"]
    assert not done()["already_done"]  # the defaults are options of their own
    assert done()["already_done"]
