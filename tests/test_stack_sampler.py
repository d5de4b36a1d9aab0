"""``framework run --profile``: the stacks of one analyzer's threads, sampled during a run."""
from __future__ import annotations

import threading
import time

from click.testing import CliRunner

from cli import main
from framework.stack_sampler import StackSampler


def _spin(seconds: float, until=lambda: True) -> None:
    """Busy for at least ``seconds``, and then until ``until()`` (at most 30 s: a loaded machine samples slowly)."""
    start = time.perf_counter()
    while (time.perf_counter() - start < seconds or not until()) and time.perf_counter() - start < 30:
        sum(range(200))


def analyzer_work(seconds: float, until=lambda: True) -> None:
    _spin(seconds, until)


def helper_work(seconds: float, until=lambda: True) -> None:
    _spin(seconds, until)


def someone_else(seconds: float, until=lambda: True) -> None:
    _spin(seconds, until)


def test_the_sampler_sees_the_thread_it_runs_in_and_the_threads_named_after_the_analyzer_only(tmp_path):
    done = threading.Event()
    with StackSampler("demo", interval_s=0.002) as sampler:
        # (every thread works until the sampler has looked 20 times: on a loaded machine 0.4 s gave 19 looks)
        helper = threading.Thread(target=helper_work, args=(0.4, done.is_set), name="demo-pre_0")
        other = threading.Thread(target=someone_else, args=(0.4, done.is_set), name="unrelated")
        helper.start()
        other.start()
        analyzer_work(0.4, lambda: sampler.samples > 20)
        done.set()
        helper.join()
        other.join()
    report = sampler.report()
    assert sampler.samples > 20 and sampler.seconds >= 0.4
    assert "analyzer_work" in report and "helper_work" in report and "someone_else" not in report
    assert "demo-sampler" not in sampler.folded()  # it does not count itself
    for line in sampler.folded().splitlines():
        stack, count = line.rsplit(" ", 1)
        assert int(count) > 0 and stack.count(";") >= 1
    assert sum(int(line.rsplit(" ", 1)[1]) for line in sampler.folded().splitlines()) == sum(sampler.stacks.values())
    txt, folded = sampler.write(tmp_path / "profiles" / "demo")
    assert txt.read_text().startswith("# demo: ") and folded.read_text() == sampler.folded()


def test_run_writes_the_profile_of_the_analyzers_asked_for_and_runs_them_again(sample_video, tmp_path):
    out = tmp_path / "run"
    args = ["run", str(sample_video.path), "--only", "cut_analysis", "--out", str(out), "--no-progress",
            "--no-library"]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert not (out / "profiles").exists()
    again = runner.invoke(main, [*args, "--profile", "cut_analysis"])
    assert again.exit_code == 0, again.output
    report = (out / "profiles" / "cut_analysis.txt").read_text()
    assert report.startswith("# cut_analysis: ") and "cut_analysis.py:analyze" in report  # ran again, sampled
    assert (out / "profiles" / "cut_analysis.folded").read_text().strip()

    bad = runner.invoke(main, [*args, "--profile", "cut_analysis,speech_transcriptoin"])
    assert bad.exit_code == 4
    assert "--profile speech_transcriptoin: not an analyzer of this run (it runs: cut_analysis)" in " ".join(
        bad.output.split())
