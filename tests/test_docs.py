"""Documentation that cannot rot.

- docs/plugin-hooks.md documents every hook of framework/hookspecs.py under its exact signature,
  and every example on the page runs.
- docs/writing-analyzers.md: the files its blocks define add up to docs/examples/framework-blackframes
  (which tests/test_example_plugin.py installs and runs); its other Python compiles; and, as a slow
  test, every shell command of the page runs in order in a fresh virtual environment.
"""
from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from plugin_helpers import REPO, code_blocks, extract_files

from framework import Event, Series, Timeline, Track, VideoMeta, hookspecs
from framework.plugins import build_plugin_manager
from framework.testing.synth import ShotSpec

DOCS = REPO / "docs"
HOOKS_DOC = DOCS / "plugin-hooks.md"
TUTORIAL = DOCS / "writing-analyzers.md"
EXAMPLE = DOCS / "examples" / "framework-blackframes"
PACKAGE = "framework-blackframes/"


def hooks() -> dict[str, types.FunctionType]:
    return {n: f for n, f in vars(hookspecs).items() if hasattr(f, "framework_spec")}


def signature_text(fn) -> str:
    """``name(param: annotation, ...) -> return`` exactly as written in hookspecs.py."""
    sig = inspect.signature(fn)
    params = ", ".join(p.name if p.annotation is p.empty else f"{p.name}: {p.annotation}"
                       for p in sig.parameters.values())
    ret = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    return f"{fn.__name__}({params}){ret}"


def hook_sections() -> dict[str, list]:
    """Hook name -> the code blocks under its ``### name`` heading."""
    sections: dict[str, list] = {}
    for block in code_blocks(HOOKS_DOC.read_text(encoding="utf-8")):
        sections.setdefault(block.heading, []).append(block)
    return {h: b for h, b in sections.items() if h.isidentifier()}


def as_module(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


# --- docs/plugin-hooks.md ----------------------------------------------------------------------
def test_signature_text_reads_the_annotations_as_written():
    assert signature_text(hookspecs.analyzer_failed) == "analyzer_failed(name: str, error: str, track: Track) -> None"


@pytest.mark.parametrize("hook", sorted(hooks()))
def test_every_hook_is_documented_under_its_exact_signature(hook):
    sections = hook_sections()
    assert hook in sections, f"docs/plugin-hooks.md has no '### {hook}' section"
    first = sections[hook][0]
    assert first.lang == "python" and first.text.strip() == signature_text(hooks()[hook]), (
        f"docs/plugin-hooks.md:{first.line}: the signature of {hook} should read\n"
        f"    {signature_text(hooks()[hook])}\nbut reads\n    {first.text.strip()}")
    examples = [b for b in sections[hook][1:] if b.lang == "python" and "@hookimpl" in b.text]
    assert examples, f"docs/plugin-hooks.md: the {hook} section has no example with @hookimpl"


def test_no_documented_hook_is_stale():
    assert set(hook_sections()) <= set(hooks()), "docs/plugin-hooks.md documents hooks that do not exist"


def test_the_documented_environment_variables_are_the_ones_the_code_reads():
    text = HOOKS_DOC.read_text(encoding="utf-8")
    code = (REPO / "framework" / "plugins.py").read_text(encoding="utf-8")
    for var in ("FRAMEWORK_LOAD_PLUGINS", "FRAMEWORK_TRACE_PLUGINS"):
        assert var in text and f'"{var}"' in code


def _examples(hook: str) -> types.ModuleType:
    (block,) = [b for b in hook_sections()[hook][1:] if "@hookimpl" in b.text]
    module = as_module(block.text, f"doc_example_{hook}")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[module])  # validates the impl
    assert not host.problems, f"the {hook} example of docs/plugin-hooks.md: {host.problems}"
    impls = getattr(host.pm.hook, hook).get_hookimpls()
    assert any(i.plugin is module for i in impls), f"the {hook} example does not implement {hook}"
    module.host = host
    return module


def test_example_register_analyzers_runs(video_factory, tmp_path):
    from framework.runner import analyze

    module = _examples("register_analyzers")
    assert module.host.analyzers["audio_presence"] is module.AudioPresence
    clip = video_factory("clip.mp4", shots=[ShotSpec(2.0), ShotSpec(1.0, "pan")])
    reg = tmp_path / "registry.yaml"
    reg.write_text("analyzers:\n  audio_presence: {}\n")
    result = analyze(clip.path, registry_path=reg, host=module.host, out_dir=tmp_path / "run", progress=False)
    track = result.timeline.tracks["audio_presence"]
    assert track.status == "ok", track.reason
    level = track.series_by_name("level")
    assert len(level.times) == pytest.approx(clip.duration, abs=1) and max(level.values) > 0


def test_example_register_llm_backends_runs():
    from framework.llm import make_backend

    module = _examples("register_llm_backends")
    backend = make_backend("shout", {}, module.host.llm_backends)
    assert backend.generate([{"role": "user", "content": "quiet"}], max_new_tokens=10) == "QUIET"


def _timeline(tmp_path: Path) -> Timeline:
    video = VideoMeta(path=str(tmp_path / "clip.mp4"), content_hash="0" * 16, size_bytes=1, duration=3.0,
                      has_video=True, width=320, height=180, fps=30.0)
    ok = Track(analyzer="a", version="1", events=[Event(start=0.5, end=1.0, label="x", score=0.9)],
               series=[Series(name="s", times=[0.0], values=[1.0])], duration_s=90.0)
    bad = Track(analyzer="b", version="1", status="failed", reason="ValueError: no", duration_s=0.5)
    return Timeline(video=video, tracks={"a": ok, "b": bad})


def test_example_register_exporters_runs(tmp_path):
    module = _examples("register_exporters")
    exporter = module.host.exporters["events_csv"]()
    (path,) = exporter.export(_timeline(tmp_path), tmp_path, context=None)
    assert path.read_text().splitlines() == ["analyzer,start,end,label,score", "a,0.5,1.0,x,0.9"]


def test_example_observers_run(tmp_path, caplog):
    timeline = _timeline(tmp_path)
    run_dir = tmp_path / "runs" / "clip"
    run_dir.mkdir(parents=True)
    with caplog.at_level("INFO", logger="my_plugin"):
        _examples("analysis_started").analysis_started(video=timeline.video, analyzers=["a", "b"], run_dir=run_dir)
        _examples("analyzer_finished").analyzer_finished(track=timeline.tracks["a"])
        _examples("analyzer_failed").analyzer_failed(name="b", error="ValueError: no", track=timeline.tracks["b"])
        _examples("analysis_finished").analysis_finished(timeline=timeline, run_dir=run_dir)
    assert "analyzing" in caplog.text and "a took 90 s" in caplog.text and "analyzer b failed" in caplog.text
    assert '"failed": ["b"]' in (run_dir.parent / "index.jsonl").read_text()


def test_every_python_block_of_the_hook_page_runs():
    for block in code_blocks(HOOKS_DOC.read_text(encoding="utf-8")):
        if block.lang == "python" and "@hookimpl" in block.text:
            module = as_module(block.text, f"doc_block_{block.line}")
            host = build_plugin_manager(load_entrypoints=False, extra_plugins=[module])
            assert not host.problems, f"docs/plugin-hooks.md:{block.line}: {host.problems}"


def test_a_hook_example_that_breaks_is_a_host_problem():
    """What the two checks above rely on: an example whose hook raises is recorded, not raised."""
    broken = as_module("from framework import hookimpl\n\n"
                       "@hookimpl\ndef register_exporters(register):\n    raise ValueError('typo')\n",
                       "doc_broken_example")
    host = build_plugin_manager(load_entrypoints=False, extra_plugins=[broken])
    assert [p for p in host.problems if "ValueError: typo" in str(p)], host.problems


# --- docs/writing-analyzers.md -----------------------------------------------------------------
def test_tutorial_files_are_the_example_package():
    files = extract_files(TUTORIAL.read_text(encoding="utf-8"))
    package = {p.removeprefix(PACKAGE): text for p, text in files.items() if p.startswith(PACKAGE)}
    on_disk = {str(p.relative_to(EXAMPLE)): p.read_text(encoding="utf-8")
               for p in EXAMPLE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
               and ".egg-info" not in str(p) and p.name != "README.md"}
    assert sorted(package) == sorted(on_disk), "the tutorial and docs/examples define different files"
    for rel, text in package.items():
        assert text == on_disk[rel], (f"docs/writing-analyzers.md and {EXAMPLE / rel} differ: "
                                      "change both (the tutorial is what users copy)")
    assert set(files) - {PACKAGE + p for p in package} == {"registry.yaml"}


def test_tutorial_registry_is_valid_and_enables_the_example(tmp_path):
    from framework.registry import load_registry

    path = tmp_path / "registry.yaml"
    path.write_text(extract_files(TUTORIAL.read_text(encoding="utf-8"))["registry.yaml"])
    registry = load_registry(path)
    assert "black_frozen" in registry.config.analyzers


def test_tutorial_python_compiles_and_the_model_example_names_manifest_models():
    from framework import Analyzer
    from framework.models import load_manifest

    manifest = load_manifest(REPO / "models_manifest.yaml")
    markdown = TUTORIAL.read_text(encoding="utf-8")
    for path, text in extract_files(markdown).items():  # a file's blocks only compile together
        if path.endswith(".py"):
            compile(text, path, "exec")
    snippets = [b for b in code_blocks(markdown) if b.lang == "python"]
    (model_block,) = [b for b in snippets if b.target is None]
    module = as_module(model_block.text, "doc_model_example")
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Analyzer) and c.name]
    assert classes and all(m in manifest for c in classes for m in c().model_ids())


def tutorial_script(markdown: str) -> str:
    """The page as one bash script: files written where their blocks are, commands run in order."""
    out = ["set -euxo pipefail"]
    written: set[str] = set()
    for block in code_blocks(markdown):
        if block.skip:
            continue
        if block.target:
            op = ">>" if block.target in written else ">"
            sep = "printf '\\n' >> " + block.target + "\n" if block.target in written else ""
            out.append(f"{sep}cat {op} {block.target} <<'TUTORIAL_EOF'\n{block.body}TUTORIAL_EOF")
            written.add(block.target)
        elif block.lang == "bash":
            out.append(block.text)
    return "\n".join(out) + "\n"


def test_tutorial_script_rebuilds_the_files(tmp_path):
    """The shell form of the page (what the slow test runs) writes exactly the extracted files."""
    markdown = TUTORIAL.read_text(encoding="utf-8")
    script = "\n".join(ln for ln in tutorial_script(markdown).split("\n")
                       if not ln.startswith(("cd ", "pip ", "pytest", "framework ")))
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    for path, text in extract_files(markdown).items():
        assert (tmp_path / path).read_text() == text


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new user's machine: a fresh venv with pip and the framework installed (not editable)
    from a copy of this checkout; returns the environment to run commands in."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("needs uv to build the fresh environment quickly")
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    subprocess.run([uv, "venv", "--seed", "--python", sys.executable, str(venv)], check=True,
                   capture_output=True)
    source = root / "framework-src"  # a copy: an in-tree build must not write into the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache", "bench", "tests"))
    proc = subprocess.run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(source)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAMEWORK_LOAD", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", VIRTUAL_ENV=str(venv),
               COLUMNS="200")
    return env


@pytest.mark.slow
def test_following_the_tutorial_in_a_fresh_environment(fresh_env, tmp_path):
    """Every command of docs/writing-analyzers.md, in order, as written (pip reaches the index)."""
    proc = subprocess.run(["bash", "-c", tutorial_script(TUTORIAL.read_text(encoding="utf-8"))], cwd=tmp_path,
                          env=fresh_env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "black_frozen" in proc.stdout  # the analyzers table and the run table
    results = Timeline.read(tmp_path / "runs" / "sample" / "results.json")
    track = results.tracks["black_frozen"]
    assert track.status == "ok" and track.plugin == "blackframes"
    assert any(e.label == "frozen" for e in track.events)  # the sample has two still shots


@pytest.mark.slow
def test_scaffold_in_a_fresh_environment(fresh_env, tmp_path):
    """`framework new-analyzer` from a regular (wheel) install, then the commands it prints."""
    script = """set -euxo pipefail
framework new-analyzer edge_density
cd framework-edge-density
pip install -e ".[test]"
pytest
framework analyzers list
"""
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=fresh_env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "3 passed" in proc.stdout and "edge_density" in proc.stdout
