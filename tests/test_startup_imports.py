"""Start-up cost: `import framework` and `framework --version` must not import the heavy stack.

The public names still resolve (lazily, PEP 562), so analyzers' ``from framework import ...`` is unchanged.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "pydantic", "av", "cv2", "pluggy", "yaml")


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_framework_loads_no_heavy_module():
    loaded = _modules_after("import framework")
    assert not [m for m in HEAVY if m in loaded]


def test_version_option_loads_no_heavy_module():
    code = ("import sys\nfrom click.testing import CliRunner\nimport cli\n"
            "r = CliRunner().invoke(cli.main, ['--version'])\nassert r.exit_code == 0 and '0.' in r.output, r.output")
    loaded = _modules_after(code)
    assert not [m for m in HEAVY if m in loaded]


def test_public_names_resolve_lazily():
    import framework

    for name in framework.__all__:
        assert getattr(framework, name) is not None, name
    assert set(framework.__all__) <= set(dir(framework))
    from framework import Analyzer, hookimpl
    from framework.analyzer import Analyzer as direct

    assert Analyzer is direct and callable(hookimpl)


def test_unknown_name_is_an_attribute_error():
    import framework

    with pytest.raises(AttributeError, match="no_such_name"):
        framework.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from framework import no_such_name  # noqa: F401


def test_discovering_the_plugins_imports_no_analyzer_module():
    """The built-ins are registered by name (``framework.Deferred``): building the host imports none
    of their modules, and asking for fusion's class loads its module but not its digest, grounding
    and LLM code, which load only when fusion runs."""
    loaded = _modules_after("from framework.plugins import build_plugin_manager\n"
                            "host = build_plugin_manager(load_entrypoints=False)\n"
                            "assert 'fusion' in host.analyzers and len(host.analyzers) > 30")
    assert not [m for m in loaded if m.startswith("analyzers.")]
    loaded = _modules_after("from framework.plugins import build_plugin_manager\n"
                            "host = build_plugin_manager(load_entrypoints=False)\n"
                            "assert host.analyzers['fusion'].name == 'fusion'")
    assert "analyzers.fusion" in loaded
    assert not [m for m in ("analyzers.fusion.digest", "analyzers.fusion.summarize", "analyzers.fusion.grounding",
                            "analyzers.fusion.extractive", "analyzers.fusion.align") if m in loaded]


def test_an_only_run_configures_what_it_runs_and_nothing_else():
    """``--only cut_analysis``: the registry configures cut_analysis (and what it depends on) and
    imports no other analyzer module."""
    loaded = _modules_after("from framework.plugins import build_plugin_manager\n"
                            "from framework.registry import load_registry\n"
                            "from framework.runner import needed_analyzers, select_analyzers\n"
                            "host = build_plugin_manager(load_entrypoints=False)\n"
                            "names = needed_analyzers(host.analyzers, ['cut_analysis'], ['fusion'])\n"
                            "configured = {c.name: c for c in load_registry(None).configure(host.analyzers, host, names=names)}\n"
                            "assert select_analyzers(configured, ['cut_analysis'], ['fusion'], host.analyzers) == ['cut_analysis']")
    assert "analyzers.cut_analysis" in loaded
    assert [m for m in loaded if m.startswith("analyzers.") and m.count(".") == 1] == ["analyzers.cut_analysis"]


def test_a_run_without_fusion_does_not_load_the_summary_models(tmp_path):
    """``framework.summary`` (six pydantic models) loads only when a run has a summary to read: a
    ``--only cut_analysis`` run builds the plugin host and writes every output without it."""
    code = f"""
from pathlib import Path
from framework.plugins import build_plugin_manager
from framework.outputs import write_outputs
from framework.timeline import Event, Timeline, Track, VideoMeta
host = build_plugin_manager(load_entrypoints=False)
video = VideoMeta(path=str(Path({str(tmp_path)!r}) / "gone.mp4"), content_hash="0" * 64, size_bytes=1,
                  duration=4.0, has_video=True, width=64, height=48, fps=25.0)
cut = Track(analyzer="cut_analysis", version="1", provides=["shots"],
            events=[Event(start=0.0, end=2.0, label="shot"), Event(start=2.0, end=4.0, label="shot")])
timeline = Timeline(framework_version="0.1.0", video=video, tracks={{"cut_analysis": cut}})
written = write_outputs(timeline, Path({str(tmp_path)!r}) / "run", host=host)
assert {{Path(p).name for p in written}} >= {{"summary.md", "report.html", "cuts.csv"}}, written
"""
    loaded = _modules_after(code)
    assert "framework.outputs.html" in loaded
    assert "framework.summary" not in loaded and "analyzers.fusion" not in loaded


def test_the_cli_process_collects_rarely_and_skips_the_last_collections():
    """Start-up's ~100k long-lived objects are not rescanned a hundred times by the cyclic collector,
    and at exit they are frozen so the interpreter's final collections skip them."""
    code = ("import atexit, gc\nbefore = gc.get_threshold()\nimport cli\nafter = gc.get_threshold()\n"
            "assert gc.get_freeze_count() == 0\natexit._run_exitfuncs()\n"
            "print(before[0], after[0], after[1:] == before[1:], gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    default, raised, same_rest, frozen = int(out[0]), int(out[1]), out[2] == "True", out[3] == "True"
    assert raised >= 100 * default and same_rest and frozen
