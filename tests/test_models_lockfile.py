"""``models.lock.json`` keeps concurrent updates, and a read-only FRAMEWORK_HOME is a warning."""
from __future__ import annotations

import json
import logging

from framework.models.lockfile import ModelLock
from framework.models.manifest import load_manifest
from framework.models.roots import CacheRoots


def _on_disk(lock: ModelLock) -> dict:
    return json.loads(lock.path.read_text())["models"]


def test_record_and_forget_keep_what_another_process_wrote_since_loading():
    roots = CacheRoots.from_env()
    run = ModelLock.load(roots)          # a run loads the lock...
    ModelLock.load(roots).record("pulled-meanwhile", {"revision": "b" * 40})  # ...a `pull --update` records
    run.record("hashed-by-the-run", {"files": {}})
    assert set(_on_disk(run)) == {"pulled-meanwhile", "hashed-by-the-run"}
    assert set(run.models) == {"pulled-meanwhile", "hashed-by-the-run"}

    stale = ModelLock.load(roots)
    ModelLock.load(roots).record("later", {"revision": "c" * 40})
    stale.forget(["hashed-by-the-run"])
    assert set(_on_disk(stale)) == {"pulled-meanwhile", "later"}


def test_a_lock_that_cannot_be_written_is_a_warning_not_an_error(tmp_path, caplog):
    spec = load_manifest()["yolov8n"]
    weights = tmp_path / spec.filename
    weights.write_bytes(b"weights" * 100)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # FRAMEWORK_HOME that cannot hold the lock (read-only, or not a folder)
    lock = ModelLock(blocked / "models.lock.json")
    with caplog.at_level(logging.WARNING):
        rev = spec.handler.revision(spec, weights, lock)
    assert rev.startswith("sha256:") and len(rev) == len("sha256:") + 64
    assert "could not record yolov8n's hash" in caplog.text
