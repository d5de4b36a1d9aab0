"""docs/analyzers.md: the generated reference is current, and each built-in analyzer's hand-written
``### Outputs`` section documents every event label, event data key, track data key and series
(with its unit) that the analyzer produces.

One real run of every built-in analyzer on the shared sample video gives what they produce; fusion
runs once more on that timeline with a scripted LLM, so the keys of an LLM-written summary are
checked as well as the extractive one's.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzers import analyzer_classes
from conftest import isolate_home
from framework import AnalyzerInputs, Timeline, Track
from framework.models import load_manifest
from framework.plugins import build_plugin_manager

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "analyzers.md"
BUILTIN = sorted(c.name for c in analyzer_classes())


def _needs_downloaded_weights(cls, seen: tuple[str, ...] = ()) -> bool:
    """Whether the analyzer cannot run without weights that must be downloaded (none here): its own,
    or those of an upstream analyzer it needs (body_language reads body_pose's keypoints)."""
    manifest = _MANIFEST
    if not cls.models_optional and any(m in manifest and manifest[m].source != "bundled" for m in cls().model_ids()):
        return True
    return any(_needs_downloaded_weights(_BY_NAME[d], (*seen, cls.name))
               for d in cls.depends_on if d in _BY_NAME and d not in seen)


_MANIFEST = load_manifest()  # read once: collecting this module must not parse it per analyzer
_BY_NAME = {c.name: c for c in analyzer_classes()}


# what one offline run of the built-ins here produces; the model-backed analyzers' outputs are
# checked against this page by their own tests on tiny models (test_speech_pipeline.py and others)
RUN_HERE = sorted(c.name for c in analyzer_classes() if not _needs_downloaded_weights(c))


def _generator():
    spec = importlib.util.spec_from_file_location("gen_analyzer_docs", REPO / "scripts" / "gen_analyzer_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_analyzer_reference_is_current():
    expected = _generator().render()
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/analyzers.md is stale: run `.venv/bin/python scripts/gen_analyzer_docs.py --write`")


def test_the_generator_keeps_the_hand_written_outputs():
    gen = _generator()
    page = gen.render()
    edited = page.replace("### Outputs\n", "### Outputs\n\nA sentence someone wrote.\n", 1)
    assert gen.render(edited) == edited  # kept word for word
    assert gen.render("").count("Not documented yet") == len(BUILTIN)  # a stub for each when none exists


# --- reading the Outputs sections ---------------------------------------------------------------
@dataclass
class Outputs:
    """What one analyzer's ``### Outputs`` section documents."""

    line: int
    labels: set[str] = field(default_factory=set)
    event_keys: dict[str, set[str]] = field(default_factory=dict)  # key -> labels carrying it ("*": all)
    track_keys: set[str] = field(default_factory=set)  # "fps", "summary.title", "classes.*"
    series: dict[str, str] = field(default_factory=dict)  # name -> unit ("" when it has none)


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def outputs() -> dict[str, Outputs]:
    """Analyzer name -> its documented outputs, read from the tables of its ``### Outputs`` section.

    A table's kind is its header's first cell: ``event label``, ``event data key`` (second column:
    the labels that carry the key, or ``all``), ``track data key``, ``series`` (second column: the
    series' ``unit``, ticked, or ``none``).
    """
    found: dict[str, Outputs] = {}
    name: str | None = None
    current: Outputs | None = None
    kind = ""
    for n, line in enumerate(DOC.read_text(encoding="utf-8").split("\n"), 1):
        m = re.match(r"^## `([^`]+)`", line)
        if m:
            name, current = m.group(1), None
        elif line.startswith("### Outputs") and name:
            current = found[name] = Outputs(n)
        elif current is None or not line.startswith("|"):
            kind = "" if current is None or not line.startswith("|") else kind
        elif set(line) <= set("|-: "):
            continue
        else:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] in ("event label", "event data key", "track data key", "series"):
                kind = cells[0]
                continue
            names = _ticked(cells[0])
            assert names, f"docs/analyzers.md:{n}: the first cell should be a `name`"
            if kind == "event label":
                current.labels.update(names)
            elif kind == "event data key":
                carriers = {"*"} if cells[1] == "all" else set(_ticked(cells[1]))
                assert carriers, f"docs/analyzers.md:{n}: name the labels that carry {names} (or `all`)"
                for key in names:
                    current.event_keys.setdefault(key, set()).update(carriers)
            elif kind == "track data key":
                current.track_keys.update(names)
            elif kind == "series":
                unit = "" if cells[1] == "none" else _ticked(cells[1])[0]
                current.series.update({s: unit for s in names})
    return found


def test_the_outputs_reader_reads_the_four_tables():
    docs = outputs()
    assert set(BUILTIN) <= set(docs)
    assert "shot" in docs["cut_analysis"].labels and docs["cut_analysis"].event_keys["first_frame"] >= {"shot"}
    assert docs["audio_analysis"].series["loudness"] == "dBFS"


# --- what the analyzers produce -------------------------------------------------------------------
def _summary_reply(call) -> str:
    return json.dumps({"title": "A sample", "paragraph": "Shots, a fade and a tone.", "detailed": "d",
                       "chapters": [{"start": 0.0, "end": 6.0, "title": "Start", "summary": "s"},
                                    {"start": 6.0, "end": 12.0, "title": "End", "summary": "s"}],
                       "key_moments": [{"time": 2.0, "text": "a cut"}]})


@pytest.fixture(scope="module")
def produced(sample_video, tmp_path_factory) -> dict[str, list[Track]]:
    """Each built-in analyzer's tracks: one offline run with every built-in enabled, plus fusion with
    a scripted LLM. Those that run here must be ``ok``; those that need downloaded weights (or a GPU
    for a big model) must be ``skipped`` with the reason: no analyzer may fail."""
    from analyzers.fusion import Fusion
    from framework.testing.llm import ScriptedLLM, backend_plugin
    from framework.runner import analyze

    folder = tmp_path_factory.mktemp("all_analyzers")
    registry = folder / "registry.yaml"
    registry.write_text("analyzers:\n" + "".join(f"  {n}: {{enabled: true}}\n" for n in BUILTIN if n != "fusion")
                        + "  fusion: {enabled: true, params: {backend: extractive}}\n")
    with pytest.MonkeyPatch.context() as mp:  # empty model caches: this fixture runs before isolated_home
        isolate_home(mp, folder / "home")
        result = analyze(sample_video.path, registry_path=registry, out_dir=folder / "run", progress=False,
                         load_entrypoints=False, offline=True)
    timeline: Timeline = result.timeline
    assert sorted(timeline.tracks) == BUILTIN
    for name, track in timeline.tracks.items():
        if name in RUN_HERE:
            assert track.status == "ok", f"{name}: {track.status} {track.reason}"
        else:
            # skipped, with the reason: its weights or an upstream's are not here (the pull command),
            # or it needs a GPU that this machine has not
            assert track.status == "skipped" and track.reason, f"{name}: {track.status} {track.reason}"
    tracks = {n: [t] for n, t in timeline.tracks.items() if n in RUN_HERE}

    scripted = ScriptedLLM.scripted(_summary_reply, name="docs_scripted")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[backend_plugin(scripted)])
    fusion = Fusion(Fusion.Params(backend="docs_scripted", fallback_to_extractive=False))
    upstream = {n: t for n, t in timeline.tracks.items() if n != "fusion"}
    fusion.load("cpu", {})
    try:
        llm_track = fusion.analyze(AnalyzerInputs(video=timeline.video, upstream=upstream, host=host))
    finally:
        fusion.unload()
    assert llm_track.status == "ok" and scripted.calls and not llm_track.data["summary"]["extractive"]
    tracks["fusion"].append(llm_track)
    return tracks


def _track_keys(data: dict) -> set[str]:
    """Top-level keys, and one level into dict values: ``summary``, ``summary.title``, ..."""
    keys = set(data)
    for key, value in data.items():
        if isinstance(value, dict):
            keys |= {f"{key}.{sub}" for sub in value}
    return keys


def _undocumented_track_keys(produced_keys: set[str], documented: set[str]) -> set[str]:
    """``key.*`` documents every sub-key of ``key`` (a mapping whose keys are data, such as labels)."""
    wild = {k.removesuffix(".*") for k in documented if k.endswith(".*")}
    return {k for k in produced_keys if k not in documented and not ("." in k and k.split(".")[0] in wild)}


@pytest.mark.parametrize("name", RUN_HERE)
def test_every_output_of_the_analyzer_is_documented(name, produced):
    documented = outputs().get(name)
    assert documented is not None, f"docs/analyzers.md: `{name}` has no '### Outputs' section"
    where = f"docs/analyzers.md:{documented.line}: {name}"
    for track in produced[name]:
        labels = {e.label for e in track.events}
        assert labels <= documented.labels, f"{where}: undocumented event labels {sorted(labels - documented.labels)}"
        for e in track.events:
            for key in e.data:
                carriers = documented.event_keys.get(key, set())
                assert "*" in carriers or e.label in carriers, (
                    f"{where}: event data key `{key}` of `{e.label}` events is not documented "
                    "(add it to the event data key table, with the labels that carry it)")
        missing = _undocumented_track_keys(_track_keys(track.data), documented.track_keys)
        assert not missing, f"{where}: undocumented track data keys {sorted(missing)}"
        for s in track.series:
            assert s.name in documented.series, f"{where}: series `{s.name}` is not documented"
            assert documented.series[s.name] == s.unit, (
                f"{where}: series `{s.name}` has unit {s.unit!r}, the page says {documented.series[s.name]!r}")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_documented_output_is_named_in_the_code(name):
    """Against stale docs: each documented label, event data key and series name appears as a
    string in the analyzer's source (a label a run did not happen to produce is still checked)."""
    cls = next(c for c in analyzer_classes() if c.name == name)
    module = inspect.getmodule(cls)
    files = (sorted(Path(module.__file__).parent.glob("*.py")) if Path(module.__file__).name == "__init__.py"
             else [Path(module.__file__)])
    # and the private helper packages of analyzers/ it imports from (``from ._speech.prosody import``)
    helpers = set(re.findall(r"^from \.(_\w+)", "\n".join(f.read_text(encoding="utf-8") for f in files), re.M))
    files += [f for h in sorted(helpers) for f in sorted((REPO / "analyzers" / h).glob("*.py"))]
    source = "\n".join(f.read_text(encoding="utf-8") for f in files)
    documented = outputs()[name]
    for word in sorted(documented.labels | set(documented.event_keys) | set(documented.series)):
        assert f'"{word}"' in source or f"'{word}'" in source, (
            f"docs/analyzers.md:{documented.line}: {name} documents `{word}`, which its code never names")
