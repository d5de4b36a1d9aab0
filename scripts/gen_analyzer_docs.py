"""Write docs/analyzers.md from the built-in analyzers' classes and Params (a test keeps it current).

    .venv/bin/python scripts/gen_analyzer_docs.py --write

(``--write`` renders first and then replaces the file; a shell redirection into docs/analyzers.md
would empty the file before it is read, losing the hand-written sections. Without ``--write`` the
page goes to standard output.)

Each analyzer's ``### Outputs`` section (its event labels, data keys and series) is written by
hand in docs/analyzers.md and kept as it is; a new analyzer gets a stub to fill in.
``tests/test_docs_analyzers.py`` checks those sections against what the analyzers produce.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "analyzers.md"
OUTPUTS_HEADING = "### Outputs"
# an analyzer class may say how the system this project replaces shipped it: the optional class
# attribute ``original_status`` ("active" or "disabled"); analyzers without it get no such line
ORIGINAL_STATUS = {"active": "**active in the original system**",
                   "disabled": "**disabled in the original system** (disabled by default here too)"}
OUTPUTS_STUB = [OUTPUTS_HEADING, "",
                "Not documented yet: list its event labels, data keys and series here, in the tables the other",
                "analyzers use (`tests/test_docs_analyzers.py` checks them).", ""]


def outputs_sections(markdown: str) -> dict[str, list[str]]:
    """Analyzer name -> the lines of its hand-written ``### Outputs`` section (up to the next ``## ``)."""
    found: dict[str, list[str]] = {}
    name, inside = None, False
    for line in markdown.split("\n"):
        m = re.match(r"^## `([^`]+)`", line)
        if m:
            name, inside = m.group(1), False
            continue
        if line.startswith(OUTPUTS_HEADING) and name:
            inside = True
            found[name] = []
        if inside and name:
            found[name].append(line)
    for lines in found.values():
        while lines and not lines[-1].strip():
            lines.pop()
    return found


def render(existing: str | None = None) -> str:
    """The page, with the ``### Outputs`` sections of ``existing`` (default: docs/analyzers.md)."""
    from analyzers import analyzer_classes

    if existing is None:
        existing = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    kept = outputs_sections(existing)
    out = ["# Built-in analyzers", "",
           "Generated from the code by `scripts/gen_analyzer_docs.py`; `tests/test_docs_analyzers.py` fails when it is stale.",
           "Set parameters under `analyzers.<name>.params` in `registry.yaml` (see [registry.md](registry.md)).",
           "Each analyzer's **Outputs** (event labels, data keys, series) are written by hand; the same test",
           "runs every analyzer and fails when it produces a label, key or series that is not documented there.", ""]
    for cls in sorted(analyzer_classes(), key=lambda c: c.name):
        a = cls()
        doc = inspect.getdoc(cls) or cls.description
        out += [f"## `{cls.name}` (version {cls.version})", "", cls.description or doc.split("\n\n")[0], ""]
        facts = [f"device: {cls.device}"]
        original = getattr(cls, "original_status", None)  # optional: "active" / "disabled" in the original system
        if original in ORIGINAL_STATUS:
            facts.insert(0, ORIGINAL_STATUS[original])
        if cls.depends_on:
            facts.append("depends on: " + ", ".join("every other enabled analyzer" if d == "*" else f"`{d}`"
                                                     for d in cls.depends_on))
        if cls.requires_audio:
            facts.append("needs audio (skipped without it)")
        elif cls.needs_audio:
            facts.append("reads audio when there is some")
        specs = a.frame_specs()
        if specs:
            facts.append("frames: " + "; ".join(
                f"{'every frame' if s.fps is None else f'{s.fps:g} fps'}, {s.width or 'source'} px wide, {s.pix_fmt}"
                for s in specs))
        if a.model_ids():
            facts.append("models: " + ", ".join(a.model_ids()))
        out += ["- " + f for f in facts] + [""]
        fields = cls.Params.model_fields
        if fields:
            out += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
            for name, field in fields.items():
                ann = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
                default = field.get_default(call_default_factory=True)
                desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
                out.append(f"| `{name}` | {ann.replace('|', chr(92) + '|')} | `{json.dumps(default)}` | {desc} |")
            out.append("")
        else:
            out += ["No parameters.", ""]
        out += (kept[cls.name] + [""]) if cls.name in kept else OUTPUTS_STUB
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    page = render()
    if sys.argv[1:] == ["--write"]:
        DOC.write_text(page)
    else:
        print(page, end="")
