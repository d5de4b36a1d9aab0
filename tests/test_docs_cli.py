"""docs/cli.md documents every `framework` command and every option, and nothing else.

As datasette's docs test does for its hooks: the test walks the click command tree (``cli.main``)
and fails when a command has no ``## `framework ...` `` section, when an option or argument is not
in its section's table, when a section has no example, and when the page documents a command or an
option that no longer exists. Every ``framework ...`` line of the page's bash blocks must parse
with click (options exist, values convert, arguments are complete).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import click
import pytest
from plugin_helpers import REPO, code_blocks

from cli import main

CLI_DOC = REPO / "docs" / "cli.md"
HELP = set(main.context_settings["help_option_names"])  # every command has it: documented once
HEADING = re.compile(r"^#{2,4} `(framework(?: [a-z][a-z0-9-]*)*)`\s*$")


def commands(cmd: click.Command = main, path: str = "framework") -> dict[str, click.Command]:
    """Every command and group of the tree, by its full path (``framework models list``)."""
    found = {path: cmd}
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            if not sub.hidden:
                found.update(commands(sub, f"{path} {name}"))
    return found


def parameter_names(cmd: click.Command) -> set[str]:
    """``--out``, ``-v``, ``--verbose``, and arguments as ``VIDEOS`` (``--help`` is documented once, globally)."""
    names: set[str] = set()
    for p in cmd.params:
        if getattr(p, "hidden", False):
            continue
        if isinstance(p, click.Argument):
            names.add(p.human_readable_name.upper())
        else:
            names.update(p.opts + p.secondary_opts)
    return names


@dataclass
class Section:
    line: int
    body: list[str] = field(default_factory=list)

    def documented(self) -> set[str]:
        """Options and arguments named in the first column of the section's tables."""
        names: set[str] = set()
        for row in self.body:
            if not row.startswith("|") or set(row) <= set("|-: "):
                continue
            first = row.strip("|").split("|")[0]
            for span in re.findall(r"`([^`]+)`", first):
                word = span.split()[0].strip("[]").removesuffix("...").strip("[]")
                if word.startswith("-") or word.isupper():
                    names.add(word.split("/")[0] if word.startswith("-") else word)
        return names


def sections() -> dict[str, Section]:
    """Command path -> the lines under its heading, up to the next command heading."""
    out: dict[str, Section] = {}
    current: Section | None = None
    for n, line in enumerate(CLI_DOC.read_text(encoding="utf-8").split("\n"), 1):
        m = HEADING.match(line)
        if m:
            assert m.group(1) not in out, f"docs/cli.md:{n}: `{m.group(1)}` is documented twice"
            current = out[m.group(1)] = Section(n)
        elif line.startswith("#"):
            current = None  # a heading that is not a command ends the command's section
        elif current is not None:
            current.body.append(line)
    return out


def example_commands() -> list[tuple[int, str, list[str]]]:
    """(line, heading, argv) for each ``framework ...`` command line in the page's bash blocks."""
    found = []
    for block in code_blocks(CLI_DOC.read_text(encoding="utf-8")):
        if block.lang != "bash":
            continue
        for offset, line in enumerate(block.text.split("\n"), 1):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)  # drops comments, splits at | && ;
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if set(token) <= set("();<>|&"):
                    if words[:1] == ["framework"]:
                        found.append((block.line + offset, block.heading, words[1:]))
                    words = []
                else:
                    words.append(token)
    return found


def parse(argv: list[str]) -> str:
    """Parse ``framework ARGV`` as click would, without running it; returns the command's path."""
    cmd, name, args, parent, path = main, "framework", list(argv), None, "framework"
    while True:
        try:
            ctx = cmd.make_context(name, args, parent=parent)
        except click.exceptions.Exit as exc:  # --version, --help: parsed fine
            assert exc.exit_code == 0
            return path
        if not isinstance(cmd, click.Group):
            return path
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return path
        name, cmd, args = cmd.resolve_command(ctx, rest)
        parent, path = ctx, f"{path} {name}"


# --- the tests --------------------------------------------------------------------------------
def test_the_walk_sees_the_whole_tree():
    tree = commands()
    assert {"framework", "framework run", "framework models", "framework models prune"} <= set(tree)
    assert {"--json", "--registry", "--only", "VIDEOS"} <= parameter_names(tree["framework run"])
    assert {"--version", "-v", "--verbose", "-q", "--quiet"} <= parameter_names(main)


def test_the_table_reader_finds_options_and_arguments():
    rows = ["| option | what it does |", "|---|---|", "| `VIDEOS...` | the videos |",
            "| `-v`, `--verbose` | more |", "| `--out FOLDER` | where |", "| `[IDS]...` | ids |", "prose `--not`"]
    assert Section(1, rows).documented() == {"VIDEOS", "-v", "--verbose", "--out", "IDS"}


@pytest.mark.parametrize("path", sorted(commands()))
def test_every_command_and_option_is_documented(path):
    docs = sections()
    assert path in docs, f"docs/cli.md has no '## `{path}`' section"
    section = docs[path]
    missing = parameter_names(commands()[path]) - section.documented()
    assert not missing, (f"docs/cli.md:{section.line}: `{path}` does not document {sorted(missing)}; "
                         "add a row to its table for each")


@pytest.mark.parametrize("path", sorted(commands()))
def test_every_command_has_an_example(path):
    group = isinstance(commands()[path], click.Group)  # a group's example runs one of its commands
    examples = [line for line, _, argv in example_commands()
                if parse(argv) == path or (group and parse(argv).startswith(path + " "))]
    assert examples, f"docs/cli.md: no bash example runs `{path}`"
    section = sections()[path]
    inside = [line for line, heading, _ in example_commands() if heading == path]
    assert inside, f"docs/cli.md:{section.line}: the `{path}` section has no bash example of its own"


def test_nothing_documented_is_stale():
    tree = commands()
    for path, section in sections().items():
        assert path in tree, f"docs/cli.md:{section.line}: `{path}` is not a framework command (any more)"
        stale = section.documented() - parameter_names(tree[path]) - HELP
        assert not stale, f"docs/cli.md:{section.line}: `{path}` has no option or argument {sorted(stale)}"


def test_every_example_parses():
    found = example_commands()
    assert len(found) >= len(commands())
    for line, _, argv in found:
        try:
            parse(argv)
        except click.UsageError as exc:
            pytest.fail(f"docs/cli.md:{line}: `framework {shlex.join(argv)}` does not parse: {exc.format_message()}")


def test_a_wrong_example_would_not_parse():
    with pytest.raises(click.UsageError, match="No such option"):
        parse(["run", "video.mp4", "--fast"])
    with pytest.raises(click.UsageError, match="unexpected extra argument"):
        parse(["report", "a.json", "b.json"])
    with pytest.raises(click.UsageError, match="No such command"):
        parse(["models", "delete"])
    assert parse(["-v", "models", "list", "--json"]) == "framework models list"
    assert parse(["--version"]) == "framework"


def test_the_readme_and_getting_started_link_the_reference():
    assert "(docs/cli.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "(cli.md)" in (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")
