"""Helpers of the library, search, serve and MCP tests: a test analyzer that writes known text
events, registries that enable it, and synthetic run folders (results.json only) with known texts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CAPTIONS_PLUGIN = '''"""Test plugin: the captions its params give for each file name, as text events."""
from pathlib import Path

from framework import Analyzer, Event, hookimpl


class Captions(Analyzer):
    """Known text at known times (the params map a file name without extension to its lines)."""

    name = "test_captions"
    version = "1.0"
    provides = ("descriptions",)
    requires_video = False

    class Params(Analyzer.Params):
        by_name: dict[str, list[tuple[float, float, str]]] = {}

    def analyze(self, inputs):
        lines = self.params.by_name.get(Path(inputs.video.path).stem, [])
        return self.track(events=[Event(start=s, end=e, label="caption", data={"text": t}) for s, e, t in lines])


@hookimpl
def register_analyzers(register):
    register(Captions)
'''


def write_registry(folder: Path, captions: dict[str, list[tuple[float, float, str]]] | None = None,
                   analyzers: tuple[str, ...] = ("cut_analysis",)) -> Path:
    """``folder/registry.yaml`` enabling ``analyzers`` (and ``test_captions`` when ``captions`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    if captions is not None:
        plugins = folder / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "test_captions.py").write_text(CAPTIONS_PLUGIN, encoding="utf-8")
        lines.append("plugin_dirs: [plugins]")
    lines.append("exports: [html, markdown]")
    lines.append("analyzers:")
    lines += [f"  {a}: {{enabled: true}}" for a in analyzers]
    if captions is not None:
        lines.append(f"  test_captions: {{enabled: true, params: {{by_name: {json.dumps(captions)}}}}}")
    path = folder / "registry.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fake_video(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """A file with unique content standing in for a video (the library only hashes it)."""
    import random

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(f"{path.name}-{seed}").randbytes(size))
    return path


def fake_run(run_dir: Path, video: Path, texts: list[tuple[float, float, str]], analyzer: str = "captions",
             duration: float = 60.0, summary: dict[str, Any] | None = None, extra_tracks: dict | None = None) -> Path:
    """A run folder with a results.json whose ``analyzer`` track has one text event per ``texts`` entry
    (the video's content hash is the real hash of ``video``, as a run would record it)."""
    from framework.media.probing import file_hash
    from framework.timeline import Event, Timeline, Track, VideoMeta

    meta = VideoMeta(path=str(video.resolve()), content_hash=file_hash(video), size_bytes=video.stat().st_size,
                     duration=duration, has_video=True, width=320, height=180, fps=25.0)
    tracks = {analyzer: Track(analyzer=analyzer, version="1", provides=["descriptions"],
                              events=[Event(start=s, end=e, label="caption", data={"text": t}) for s, e, t in texts])}
    if summary is not None:
        tracks["fusion"] = Track(analyzer="fusion", version="1", provides=["summary"], data={"summary": summary})
    tracks.update(extra_tracks or {})
    Timeline(framework_version="test", video=meta, tracks=tracks).write(run_dir / "results.json")
    (run_dir / "report.html").write_text("<html><body>report</body></html>", encoding="utf-8")
    return run_dir
