"""Write docs/analyzers.md from the built-in analyzers' classes and Params (a test keeps it current).

    .venv/bin/python scripts/gen_analyzer_docs.py > docs/analyzers.md
"""
from __future__ import annotations

import inspect
import json


def render() -> str:
    from analyzers import analyzer_classes

    out = ["# Built-in analyzers", "",
           "Generated from the code by `scripts/gen_analyzer_docs.py`; `tests/test_docs_analyzers.py` fails when it is stale.",
           "Set parameters under `analyzers.<name>.params` in `registry.yaml` (see [registry.md](registry.md)).", ""]
    for cls in sorted(analyzer_classes(), key=lambda c: c.name):
        a = cls()
        doc = inspect.getdoc(cls) or cls.description
        out += [f"## `{cls.name}` (version {cls.version})", "", cls.description or doc.split("\n\n")[0], ""]
        facts = [f"device: {cls.device}"]
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
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
