"""The library database: add a run, a video that moved (found by content hash), a copy, remove,
reindex (new rules, vanished run folders, moved files found with --scan), and the `framework
library` commands."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from cli import main
from framework.library import Library, LibraryError
from framework.library.extract import moments_of
from framework.library.paths import default_library_path
from framework.timeline import Timeline
from library_helpers import fake_run, fake_video

SUMMARY = {"title": "Harbour at dawn", "paragraph": "Boats leave the harbour while gulls circle.",
           "chapters": [{"start": 0.0, "end": 30.0, "title": "Departure", "summary": "The ferry casts off."}],
           "key_moments": [{"time": 12.0, "text": "The ferry horn sounds"}]}


@pytest.fixture
def lib(tmp_path):
    return Library.open(tmp_path / "lib" / "library.db")


def test_the_default_library_lives_under_framework_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAMEWORK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FRAMEWORK_LIBRARY", raising=False)
    assert default_library_path() == tmp_path / "home" / "library" / "library.db"
    monkeypatch.setenv("FRAMEWORK_LIBRARY", str(tmp_path / "elsewhere.db"))
    assert default_library_path() == tmp_path / "elsewhere.db"
    (tmp_path / "folder").mkdir()
    assert Library.open(tmp_path / "folder").path == tmp_path / "folder" / "library.db"


def test_add_indexes_text_events_chapters_and_the_summary(tmp_path, lib):
    video = fake_video(tmp_path / "harbour.mp4")
    run = fake_run(tmp_path / "runs" / "harbour", video, [(1.0, 2.5, "a lighthouse"), (3.0, 3.0, "  gulls  ")],
                   summary=SUMMARY)
    record = lib.add_run(run)
    assert (record.name, record.path, record.title) == ("harbour.mp4", str(video.resolve()), "Harbour at dawn")
    assert record.summary == SUMMARY["paragraph"] and record.run_dir == str(run.resolve())
    moments = [(m.kind, m.start, m.end, m.text) for m in lib.moments(record.id)]
    assert ("event", 1.0, 2.5, "a lighthouse") in moments and ("event", 3.0, 3.0, "gulls") in moments
    assert ("chapter", 0.0, 30.0, "Departure — The ferry casts off.") in moments
    assert ("key_moment", 12.0, 12.0, "The ferry horn sounds") in moments
    assert ("title", 0.0, 60.0, "Harbour at dawn") in moments and record.moments == len(moments) == 6
    assert [m.text for m in lib.moments(record.id, 2.6, 12.5)] == [
        "Departure — The ferry casts off.", "Boats leave the harbour while gulls circle.", "Harbour at dawn",
        "gulls", "The ferry horn sounds"]
    assert lib.add_run(run).id == record.id and lib.count() == 1  # adding it again changes nothing


def test_events_without_text_failed_tracks_and_words_are_not_moments(tmp_path):
    from framework.timeline import Event, Track

    video = fake_video(tmp_path / "v.mp4")
    failed = Track(analyzer="ocr", version="1", status="failed", reason="boom",
                   events=[Event(start=0, end=1, label="text", data={"text": "never"})])
    words = Track(analyzer="asr", version="1", events=[
        Event(start=0, end=2, label="speech", data={"text": "hello there"}),
        Event(start=0, end=1, label="word", data={"text": "hello"}),
        Event(start=1, end=2, label="shot", data={"index": 1})])
    run = fake_run(tmp_path / "run", video, [], extra_tracks={"ocr": failed, "asr": words})
    assert [m.text for m in moments_of(Timeline.read(run / "results.json"))] == ["hello there"]


def test_a_moved_video_is_the_same_entry_and_is_found_by_its_content(tmp_path, lib):
    video = fake_video(tmp_path / "a" / "clip.mp4")
    first = lib.add_run(fake_run(tmp_path / "runs" / "clip", video, [(0, 1, "red kite")]))
    moved = tmp_path / "b" / "renamed.mp4"
    moved.parent.mkdir()
    shutil.move(video, moved)
    assert lib.find(moved).id == first.id  # not under this path: found by hashing the file
    again = lib.add_run(fake_run(tmp_path / "runs" / "renamed", moved, [(0, 1, "red kite"), (2, 3, "blue boat")]))
    assert again.id == first.id and again.moved_from == str(video.resolve())
    assert lib.count() == 1 and lib.get(first.id).path == str(moved.resolve())
    assert [m.text for m in lib.moments(first.id)] == ["red kite", "blue boat"]
    assert lib.get(first.id).added_at == first.added_at


def test_a_copy_keeps_one_entry_and_a_new_file_in_the_same_run_folder_replaces_the_old(tmp_path, lib):
    video = fake_video(tmp_path / "clip.mp4")
    original = lib.add_run(fake_run(tmp_path / "runs" / "clip", video, [(0, 1, "original")]))
    copy = tmp_path / "copy.mp4"
    shutil.copy(video, copy)
    dup = lib.add_run(fake_run(tmp_path / "runs" / "copy", copy, [(0, 1, "copy")]))
    assert dup.id == original.id and dup.copy_at == str(copy.resolve()) and lib.count() == 1
    assert [m.text for m in lib.moments(original.id)] == ["original"]
    fake_video(video, seed=1)  # the file at the same path changed and was analyzed again into its folder
    new = lib.add_run(fake_run(tmp_path / "runs" / "clip", video, [(0, 1, "edited")]))
    assert new.id != original.id and lib.count() == 1
    assert [m.text for m in lib.moments(new.id)] == ["edited"]


def test_find_by_number_name_stem_hash_and_run_folder(tmp_path, lib):
    a = lib.add_run(fake_run(tmp_path / "r1", fake_video(tmp_path / "x" / "clip.mp4"), [(0, 1, "a")]))
    b = lib.add_run(fake_run(tmp_path / "r2", fake_video(tmp_path / "y" / "clip.mp4", seed=2), [(0, 1, "b")]))
    c = lib.add_run(fake_run(tmp_path / "r3", fake_video(tmp_path / "other.mov"), [(0, 1, "c")]))
    assert lib.find(str(c.id)).id == c.id and lib.find(f"#{a.id}").id == a.id
    assert lib.find("other.mov").id == c.id and lib.find("OTHER").id == c.id
    assert lib.find(c.content_hash[3:15]).id == c.id and lib.find(c.content_hash).id == c.id
    assert lib.find(tmp_path / "r2").id == b.id
    with pytest.raises(LibraryError, match="names 2 videos"):
        lib.find("clip.mp4")
    with pytest.raises(LibraryError, match="not in the library"):
        lib.find("nothing.mp4")
    with pytest.raises(LibraryError, match="not in the library"):
        lib.find(fake_video(tmp_path / "unknown.mp4", seed=9))


def test_remove_takes_only_the_entry(tmp_path, lib):
    video = fake_video(tmp_path / "clip.mp4")
    run = fake_run(tmp_path / "runs" / "clip", video, [(0, 1, "lighthouse")])
    record = lib.add_run(run)
    assert lib.remove("clip.mp4").id == record.id
    assert lib.count() == 0 and video.is_file() and (run / "results.json").is_file()
    db = sqlite3.connect(lib.path)
    assert db.execute("SELECT count(*) FROM moments").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM moments_fts WHERE moments_fts MATCH 'lighthouse'").fetchone()[0] == 0


def test_reindex_drops_vanished_runs_rereads_changed_ones_and_finds_moved_files(tmp_path, lib):
    keep = lib.add_run(fake_run(tmp_path / "runs" / "keep", fake_video(tmp_path / "keep.mp4"), [(0, 1, "old text")]))
    gone = lib.add_run(fake_run(tmp_path / "runs" / "gone", fake_video(tmp_path / "gone.mp4"), [(0, 1, "x")]))
    moving = fake_video(tmp_path / "moving.mp4")
    moved = lib.add_run(fake_run(tmp_path / "runs" / "moving", moving, [(0, 1, "y")]))
    lost = lib.add_run(fake_run(tmp_path / "runs" / "lost", fake_video(tmp_path / "lost.mp4"), [(0, 1, "z")]))
    fake_run(tmp_path / "runs" / "keep", tmp_path / "keep.mp4", [(0, 1, "new text")])  # results.json rewritten
    shutil.rmtree(tmp_path / "runs" / "gone")
    (tmp_path / "archive" / "deep").mkdir(parents=True)
    shutil.move(moving, tmp_path / "archive" / "deep" / "moving-renamed.mp4")
    fake_video(tmp_path / "archive" / "same-size-other.mp4", seed=5)  # same size, other content: not it
    (tmp_path / "lost.mp4").unlink()
    report = lib.reindex(scan=[tmp_path / "archive"])
    assert sorted(r.id for r in report.updated) == sorted([keep.id, moved.id, lost.id])
    assert [n for n, _ in report.removed] == ["gone.mp4"]
    assert report.moved == [(str(moving.resolve()), str((tmp_path / "archive" / "deep" / "moving-renamed.mp4").resolve()))]
    assert [r.id for r in report.missing] == [lost.id]
    assert [m.text for m in lib.moments(keep.id)] == ["new text"]
    assert lib.get(moved.id).name == "moving-renamed.mp4" and lib.count() == 3
    with pytest.raises(LibraryError):
        lib.get(gone.id)


def test_library_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEWORK_LIBRARY", str(tmp_path / "lib.db"))
    video = fake_video(tmp_path / "harbour.mp4")
    fake_run(tmp_path / "runs" / "harbour", video, [(1.0, 2.0, "a lighthouse")], summary=SUMMARY)
    fake_run(tmp_path / "runs" / "other", fake_video(tmp_path / "other.mp4"), [(0, 1, "nothing")])
    runner = CliRunner()
    added = runner.invoke(main, ["library", "add", str(tmp_path / "runs")])
    assert added.exit_code == 0 and "harbour.mp4" in added.output and "other.mp4" in added.output
    listed = json.loads(runner.invoke(main, ["library", "list", "--json"]).stdout)
    assert sorted(v["name"] for v in listed["videos"]) == ["harbour.mp4", "other.mp4"]
    shown = json.loads(runner.invoke(main, ["library", "show", str(video), "--json"]).stdout)
    assert shown["title"] == "Harbour at dawn" and "a lighthouse" in [m["text"] for m in shown["moments_list"]]
    text = runner.invoke(main, ["library", "show", "harbour"]).output
    assert "Harbour at dawn" in text and "a lighthouse" in text
    assert runner.invoke(main, ["library", "show", "nope.mp4"]).exit_code == 3
    assert runner.invoke(main, ["library", "remove", "other.mp4"]).exit_code == 0
    shutil.rmtree(tmp_path / "runs" / "harbour")
    reindexed = json.loads(runner.invoke(main, ["library", "reindex", "--json"]).stdout)
    assert reindexed["removed"][0]["video"] == "harbour.mp4"
    assert json.loads(runner.invoke(main, ["library", "list", "--json"]).stdout)["videos"] == []


def test_a_file_that_is_not_a_library_is_refused(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(LibraryError, match="not a library database"):
        Library.open(bad).count()
