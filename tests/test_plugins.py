"""The plugin host: entry-point discovery, FRAMEWORK_LOAD_PLUGINS, FRAMEWORK_TRACE_PLUGINS,
plugin folders, broken plugins named with their distribution, duplicates, and the rule that
every hook has a test of its own."""
from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
from plugin_helpers import FakeSite, framework_cli, subprocess_env

from framework import hookspecs
from framework.plugins import DuplicateNameError, build_plugin_manager
from framework.testing.synth import ShotSpec, make_video

TESTS = Path(__file__).parent

GOOD = """
from framework import Analyzer, hookimpl

class Good(Analyzer):
    name = "{name}"
    def analyze(self, inputs):
        return self.track()

@hookimpl
def register_analyzers(register):
    register(Good)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder of installed-looking distributions on sys.path (real importlib.metadata discovery)."""
    s = FakeSite(tmp_path / "site")
    monkeypatch.syspath_prepend(str(s.root))
    monkeypatch.delenv("FRAMEWORK_LOAD_PLUGINS")
    yield s
    s.forget_modules()


def problems(host) -> list:
    """Problems of the plugins a test installed (built-ins are other tests' business)."""
    return [p for p in host.problems if not p.plugin.startswith("builtin:")]


def hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "framework_spec"))


# --- the rule: every hook has a test of its own ----------------------------------------------
def test_every_hook_has_its_own_test():
    """A hook named ``x`` needs a ``def test_hook_x`` somewhere in tests/ (as datasette does)."""
    tested = set()
    for path in TESTS.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                tested.add(node.name.removeprefix("test_hook_"))
    missing = [h for h in hook_names() if h not in tested]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"
    assert len(hook_names()) >= 7  # the introspection itself found the hooks


# --- entry points and FRAMEWORK_LOAD_PLUGINS -----------------------------------------------
def test_installed_plugin_is_discovered_with_its_distribution(site):
    site.add("framework-good", "fw_good_a", GOOD.format(name="good_a"), entry_point="good")
    host = build_plugin_manager()
    assert host.analyzers["good_a"].plugin == "good"
    assert host.distributions["good"] == "framework-good"
    assert host.origin("good_a") == "plugin good (distribution framework-good)"
    assert not problems(host)


def test_load_plugins_empty_loads_no_installed_plugin(site, monkeypatch):
    site.add("framework-good", "fw_good_b", GOOD.format(name="good_b"))
    monkeypatch.setenv("FRAMEWORK_LOAD_PLUGINS", "")
    host = build_plugin_manager()
    assert "good_b" not in host.analyzers
    assert not problems(host)
    # built-ins still load: whatever registered, it was not an installed plugin
    assert all((cls.plugin or "").startswith("builtin:") for cls in host.analyzers.values())


def test_load_plugins_limits_by_entry_point_or_distribution_name(site, monkeypatch):
    site.add("framework-one", "fw_one", GOOD.format(name="one"), entry_point="one")
    site.add("Framework_Two", "fw_two", GOOD.format(name="two"), entry_point="two")
    monkeypatch.setenv("FRAMEWORK_LOAD_PLUGINS", "one")
    host = build_plugin_manager()
    assert "one" in host.analyzers and "two" not in host.analyzers
    site.forget_modules()
    # distribution names match in their normalized form (PEP 503), spaces are ignored
    monkeypatch.setenv("FRAMEWORK_LOAD_PLUGINS", " framework-two , ")
    host = build_plugin_manager()
    assert "two" in host.analyzers and "one" not in host.analyzers
    assert not problems(host)


def test_load_plugins_names_an_unknown_plugin(site, monkeypatch):
    site.add("framework-one", "fw_one_u", GOOD.format(name="one_u"), entry_point="one")
    monkeypatch.setenv("FRAMEWORK_LOAD_PLUGINS", "one,framework-missing")
    host = build_plugin_manager()
    assert "one_u" in host.analyzers
    assert [p.plugin for p in problems(host)] == ["framework-missing"]
    assert "FRAMEWORK_LOAD_PLUGINS" in str(problems(host)[0])


def test_load_entrypoints_false_ignores_installed_plugins(site):
    site.add("framework-good", "fw_good_c", GOOD.format(name="good_c"))
    assert "good_c" not in build_plugin_manager(load_entrypoints=False).analyzers


# --- FRAMEWORK_TRACE_PLUGINS ----------------------------------------------------------------
def test_trace_plugins_logs_each_hook_call_with_plugin_and_outcome(site, monkeypatch, caplog):
    site.add("framework-good", "fw_good_t", GOOD.format(name="good_t"), entry_point="good")
    monkeypatch.setenv("FRAMEWORK_TRACE_PLUGINS", "1")
    with caplog.at_level(logging.INFO, logger="framework.plugins.trace"):
        host = build_plugin_manager()
        host.notify("analysis_finished", timeline=None, run_dir=None)  # no observer: no line
    lines = [r.getMessage() for r in caplog.records if r.name == "framework.plugins.trace"]
    assert "hook register_analyzers -> plugin good (distribution framework-good)(register)" in lines
    assert "hook register_analyzers <- good returned None" in lines


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_trace_plugins_off(site, monkeypatch, caplog, value):
    site.add("framework-good", "fw_good_off", GOOD.format(name="good_off"))
    monkeypatch.setenv("FRAMEWORK_TRACE_PLUGINS", value)
    with caplog.at_level(logging.INFO, logger="framework.plugins.trace"):
        build_plugin_manager()
    assert not [r for r in caplog.records if r.name == "framework.plugins.trace"]


def test_trace_shows_a_raising_hook(site, monkeypatch, caplog):
    site.add("framework-bad", "fw_bad_t", """
        from framework import hookimpl

        @hookimpl
        def register_analyzers(register):
            raise RuntimeError("boom")
        """, entry_point="bad")
    monkeypatch.setenv("FRAMEWORK_TRACE_PLUGINS", "yes")
    with caplog.at_level(logging.INFO, logger="framework.plugins.trace"):
        host = build_plugin_manager()
    assert "hook register_analyzers <- bad raised RuntimeError: boom" in caplog.text
    assert "register_analyzers raised RuntimeError: boom" in str(problems(host)[0])
    assert "distribution framework-bad" in str(problems(host)[0])


def test_a_raising_observer_is_logged_with_its_distribution(site, caplog):
    site.add("framework-noisy", "fw_noisy", """
        from framework import hookimpl

        @hookimpl
        def analysis_finished(timeline, run_dir):
            raise RuntimeError("disk full")
        """, entry_point="noisy")
    host = build_plugin_manager()
    host.notify("analysis_finished", timeline=None, run_dir=None)  # does not raise
    assert ("observer analysis_finished of plugin noisy (distribution framework-noisy) raised "
            "RuntimeError: disk full") in caplog.text


# --- broken plugins are named with their distribution and the rest load ---------------------
def test_import_failure_names_plugin_and_distribution_and_others_load(site):
    site.add("framework-broken", "fw_broken", "import not_a_real_module_xyz\n", entry_point="broken")
    site.add("framework-good", "fw_good_d", GOOD.format(name="good_d"), entry_point="good")
    host = build_plugin_manager()
    assert "good_d" in host.analyzers
    (problem,) = problems(host)
    assert (problem.plugin, problem.distribution) == ("broken", "framework-broken")
    assert str(problem).startswith("plugin broken (distribution framework-broken): failed to load: "
                                   "ModuleNotFoundError")


def test_plugin_calling_sys_exit_at_import_is_contained(site):
    site.add("framework-exits", "fw_exits", "import sys\nsys.exit(3)\n", entry_point="exits")
    host = build_plugin_manager()
    assert "SystemExit" in str(problems(host)[0])


def test_misspelled_hook_is_reported(site):
    site.add("framework-typo", "fw_typo", """
        from framework import hookimpl

        @hookimpl
        def register_analyzer(register):
            pass
        """, entry_point="typo")
    (problem,) = problems(build_plugin_manager())
    assert "unknown hook(s) register_analyzer" in str(problem)
    assert "register_analyzers" in str(problem)  # the list of real hooks helps fix the typo


def test_module_without_hookimpl_is_reported(site):
    site.add("framework-empty", "fw_empty", "def register_analyzers(register):\n    pass\n",
             entry_point="empty")
    (problem,) = problems(build_plugin_manager())
    assert "did you forget @hookimpl" in str(problem)


def test_registering_a_non_analyzer_is_a_problem_not_a_crash(site):
    site.add("framework-wrong", "fw_wrong", """
        from framework import hookimpl

        class NotAnAnalyzer:
            name = "nope"

        @hookimpl
        def register_analyzers(register):
            register(NotAnAnalyzer)
        """, entry_point="wrong")
    host = build_plugin_manager()
    assert "nope" not in host.analyzers
    assert "not a framework.Analyzer subclass" in str(problems(host)[0])


def test_duplicate_analyzer_name_names_both_plugins_and_distributions(site):
    site.add("framework-first", "fw_first", GOOD.format(name="twin"), entry_point="first")
    site.add("framework-second", "fw_second", GOOD.format(name="twin"), entry_point="second")
    with pytest.raises(DuplicateNameError) as info:
        build_plugin_manager()
    msg = str(info.value)
    assert "'twin'" in msg
    assert "plugin first (distribution framework-first)" in msg
    assert "plugin second (distribution framework-second)" in msg
    assert info.value.exit_code == 6


def test_same_entry_point_name_in_two_distributions(site):
    site.add("framework-aa", "fw_aa", GOOD.format(name="aa"), entry_point="same")
    site.add("framework-bb", "fw_bb", GOOD.format(name="bb"), entry_point="same")
    host = build_plugin_manager()
    assert len([n for n in ("aa", "bb") if n in host.analyzers]) == 1
    assert "already uses the entry-point name 'same'" in str(problems(host)[0])


# --- deferred registration (framework.Deferred) -------------------------------------------
DEFERRED = """
from framework import Deferred, hookimpl

@hookimpl
def register_analyzers(register):
    register(Deferred("lazy_one", "{module}:Good"))
"""


def impl_module(site, module: str, name: str) -> None:
    """A module defining analyzer ``Good`` named ``name`` and no hook (what a Deferred points at)."""
    (site.root / f"{module}.py").write_text(
        f"from framework import Analyzer\n\nclass Good(Analyzer):\n    name = {name!r}\n\n"
        "    def analyze(self, inputs):\n        return self.track()\n")
    site.modules.append(module)  # dropped from sys.modules when the test ends


def test_a_deferred_analyzer_is_imported_when_first_asked_for(site):
    import sys

    site.add("framework-lazy", "fw_lazy", DEFERRED.format(module="fw_lazy_impl"), entry_point="lazy")
    impl_module(site, "fw_lazy_impl", "lazy_one")
    host = build_plugin_manager()
    assert "lazy_one" in host.analyzers and "fw_lazy_impl" not in sys.modules
    assert host.plugin_of("lazy_one") == "lazy"
    cls = host.analyzers["lazy_one"]
    assert cls.name == "lazy_one" and cls.plugin == "lazy" and "fw_lazy_impl" in sys.modules
    assert host.analyzers["lazy_one"] is cls  # imported once


def test_a_deferred_analyzer_that_cannot_be_imported_names_plugin_and_target(site):
    from framework.plugins import PluginError

    site.add("framework-lazy", "fw_lazy", DEFERRED.format(module="fw_missing_impl"), entry_point="lazy")
    host = build_plugin_manager()
    assert "lazy_one" in host.analyzers and not problems(host)  # nothing imported yet
    with pytest.raises(PluginError, match=r"plugin lazy: analyzer 'lazy_one': cannot import fw_missing_impl:Good"):
        host.analyzers["lazy_one"]


def test_a_deferred_class_must_carry_the_registered_name(site):
    from framework.plugins import PluginError

    site.add("framework-lazy", "fw_lazy", DEFERRED.format(module="fw_named_impl"), entry_point="lazy")
    impl_module(site, "fw_named_impl", "other_name")
    host = build_plugin_manager()
    with pytest.raises(PluginError, match="registered 'lazy_one' as fw_named_impl:Good, whose name is 'other_name'"):
        host.analyzers["lazy_one"]


def test_a_deferred_name_is_checked_for_duplicates_without_importing(site):
    site.add("framework-lazy", "fw_lazy", DEFERRED.format(module="fw_never_imported"), entry_point="lazy")
    site.add("framework-eager", "fw_eager", GOOD.format(name="lazy_one"), entry_point="eager")
    with pytest.raises(DuplicateNameError, match="'lazy_one' is registered twice"):
        build_plugin_manager()


def test_only_analyzers_can_be_deferred(site):
    site.add("framework-lazyexp", "fw_lazyexp", """
        from framework import Deferred, hookimpl

        @hookimpl
        def register_exporters(register):
            register(Deferred("lazy_export", "fw_nowhere:Exporter"))
        """, entry_point="lazyexp")
    host = build_plugin_manager()
    assert "lazy_export" not in host.exporters
    assert "only analyzers can be deferred" in str(problems(host)[0])


def test_the_builtin_index_lists_every_analyzer_the_package_defines():
    """``analyzers.BUILTIN`` registers the built-ins by name; a module added without an entry
    there (or an entry whose class moved) fails here."""
    import analyzers

    scanned = {cls.name: f"{cls.__module__}:{cls.__qualname__}" for cls in analyzers.scan_analyzer_classes()}
    assert scanned == analyzers.BUILTIN
    host = build_plugin_manager(load_entrypoints=False)
    assert [host.analyzers[n] for n in analyzers.BUILTIN] == analyzers.analyzer_classes()


# --- plugin folders (plugin_dirs in registry.yaml) ----------------------------------------
def test_plugin_dir_loads_modules_and_packages(tmp_path):
    folder = tmp_path / "plugins"
    (folder / "pkgplug").mkdir(parents=True)
    (folder / "single.py").write_text(GOOD.format(name="from_file"))
    (folder / "pkgplug" / "__init__.py").write_text("from .impl import register_analyzers\n")
    (folder / "pkgplug" / "impl.py").write_text(GOOD.format(name="from_package"))
    (folder / "_private.py").write_text("raise RuntimeError('must not be imported')\n")
    host = build_plugin_manager([folder], load_entrypoints=False)
    assert {"from_file", "from_package"} <= set(host.analyzers)
    assert not problems(host)
    assert host.analyzers["from_file"].plugin.startswith("single (")


def test_plugin_dir_problems_name_the_file(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("1/0\n")
    host = build_plugin_manager([folder, tmp_path / "nowhere"], load_entrypoints=False)
    texts = [str(p) for p in problems(host)]
    assert any(str(folder / "broken.py") in t and "ZeroDivisionError" in t for t in texts)
    assert any("nowhere" in t and "does not exist" in t for t in texts)


def test_registry_plugin_dirs_are_relative_to_the_registry(tmp_path):
    from framework.registry import load_registry

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mine.py").write_text(GOOD.format(name="mine"))
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_dirs: [plugins]\nanalyzers:\n  mine: {}\n")
    registry = load_registry(reg)
    host = build_plugin_manager(registry.plugin_dirs, load_entrypoints=False)
    configured = {c.name: c for c in registry.configure(host.analyzers)}
    assert configured["mine"].enabled


# --- `framework run` with broken plugins: named with their distribution; --strict -----------
RAISER = """
from framework import Analyzer, hookimpl

class Raiser(Analyzer):
    name = "raiser"
    def analyze(self, inputs):
        raise RuntimeError("cannot read frame at 0.50 s")

@hookimpl
def register_analyzers(register):
    register(Raiser)
"""


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    """Installed-looking plugins: one fails to import, one has an analyzer that raises, one works."""
    root = tmp_path_factory.mktemp("broken")
    s = FakeSite(root / "site")
    s.add("framework-broken-import", "fw_cli_broken", "raise ImportError('needs libfoo 2')\n",
          entry_point="broken")
    s.add("framework-raiser", "fw_cli_raiser", RAISER, entry_point="raiser")
    s.add("framework-good", "fw_cli_good", GOOD.format(name="good"), entry_point="good")
    make_video(root / "clip.mp4", [ShotSpec(1.0)], audio=False, text=None)
    (root / "registry.yaml").write_text("analyzers:\n  raiser: {}\n  good: {}\n")
    return root


def _run(root, *extra, load=None):
    env = subprocess_env(root / "site", COLUMNS="200")
    if load is not None:
        env["FRAMEWORK_LOAD_PLUGINS"] = load
    return framework_cli("run", str(root / "clip.mp4"), "--registry", str(root / "registry.yaml"),
                         "--out", str(root / f"run{len(extra)}"), "--json", "--no-resume", *extra,
                         env=env, cwd=root)


def test_run_names_failing_plugins_with_their_distribution_and_goes_on(broken_site):
    proc = _run(broken_site)
    assert proc.returncode == 5, proc.stderr  # finished, but an analyzer failed
    assert "plugin broken (distribution framework-broken-import): failed to load: ImportError: needs libfoo 2" \
        in " ".join(proc.stderr.split())
    tracks = json.loads(proc.stdout)["tracks"]
    assert tracks["good"]["status"] == "ok"
    assert tracks["raiser"]["status"] == "failed"
    assert tracks["raiser"]["reason"] == ("RuntimeError: cannot read frame at 0.50 s "
                                          "(plugin raiser, distribution framework-raiser)")
    results = json.loads((broken_site / "run0" / "results.json").read_text())
    assert any("framework-broken-import" in p for p in results["run"]["plugin_problems"])


def test_strict_turns_a_plugin_import_failure_into_an_error(broken_site):
    proc = _run(broken_site, "--strict")
    assert proc.returncode == 6, proc.stderr
    assert "framework-broken-import" in proc.stderr and "--strict" in proc.stderr
    assert not (broken_site / "run1" / "results.json").exists()  # nothing ran


def test_strict_turns_a_failing_plugin_analyzer_into_an_error(broken_site):
    proc = _run(broken_site, "--strict", load="raiser,good")  # the broken import is not loaded
    assert proc.returncode == 6, proc.stderr
    tracks = json.loads(proc.stdout)["tracks"]
    assert tracks["raiser"]["status"] == "failed" and tracks["good"]["status"] == "ok"


def test_trace_plugins_in_the_cli(broken_site, tmp_path):
    """The trace shows even with -q; FRAMEWORK_LOAD_PLUGINS limits what `analyzers list` sees."""
    env = subprocess_env(broken_site / "site", FRAMEWORK_TRACE_PLUGINS="1", COLUMNS="200",
                         FRAMEWORK_LOAD_PLUGINS="good")
    proc = framework_cli("-q", "analyzers", "list", "--json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hook register_analyzers -> plugin good (distribution framework-good)(register)" in proc.stderr
    names = [row["name"] for row in json.loads(proc.stdout)["analyzers"]]
    assert "good" in names and "raiser" not in names


def test_run_analyzer_runs_a_class_of_the_test_through_analyzers_plugin(sample_video, tmp_path):
    """``framework.testing.analyzers_plugin(Cls)``, as docs/writing-analyzers.md says, in place of a plugin module."""
    from framework import Analyzer, Event
    from framework.testing import analyzers_plugin, run_analyzer

    class Marks(Analyzer):
        name = "t_marks"
        version = "1"

        def analyze(self, inputs):
            return self.track(events=[Event(start=0.0, end=inputs.video.duration, label="whole")])

    track = run_analyzer(analyzers_plugin(Marks), sample_video.path, tmp_path, "t_marks")
    assert track.status == "ok" and [e.label for e in track.events] == ["whole"]
    assert track.events[0].end == pytest.approx(sample_video.duration, abs=0.1)
