"""Files the params name (custom weights, an adapter, a summary model folder) are part of the
resume key: new contents at the same path are not mistaken for the old ones."""
from __future__ import annotations

import hashlib
import json
import os

from analyzers.fusion import Fusion
from analyzers.product_detection import ProductDetection
from framework import Analyzer
from framework.analyzer import file_stamp


def _touch_later(path):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_params_alone_hash_as_before():
    class Plain(Analyzer):
        name = "plain"

        class Params(Analyzer.Params):
            level: int = 3

    a = Plain({"level": 5})
    assert a.local_files() == []
    expected = hashlib.sha256(json.dumps({"level": 5}, sort_keys=True).encode()).hexdigest()[:16]
    assert a.params_hash() == expected  # keys of earlier runs stay valid


def test_custom_weights_changed_at_the_same_path_change_the_hash(tmp_path):
    weights = tmp_path / "shop.pt"
    weights.write_bytes(b"first")
    a = ProductDetection({"weights": str(weights)})
    assert a.local_files() == [weights]
    first = a.params_hash()
    assert ProductDetection({"weights": str(weights)}).params_hash() == first  # stable while unchanged
    weights.write_bytes(b"retrained")
    _touch_later(weights)
    assert a.params_hash() != first
    assert ProductDetection({}).local_files() == []  # the manifest's yolov8s: its revision is in the key


def test_a_summary_model_folder_is_stamped_and_a_manifest_id_is_not(tmp_path):
    folder = tmp_path / "my-llm"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"1")
    local = Fusion({"backend": "transformers", "model": str(folder)})
    assert local.local_files() == [folder]
    before = local.params_hash()
    (folder / "model.safetensors").write_bytes(b"22")
    assert local.params_hash() != before
    assert Fusion({"backend": "transformers", "model": "qwen2.5-1.5b-instruct"}).local_files() == []
    assert Fusion({"backend": "extractive"}).local_files() == []


def test_a_missing_file_has_a_stamp_of_its_own(tmp_path):
    gone = tmp_path / "gone.pt"
    assert file_stamp(gone) == [str(gone), None]
    gone.write_bytes(b"x")
    assert file_stamp(gone)[1:] == [1, gone.stat().st_mtime_ns]
