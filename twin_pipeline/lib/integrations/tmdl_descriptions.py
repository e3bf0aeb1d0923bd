"""Carry the gold column descriptions (`twin_pipeline/lib/column_descriptions.py`) into the Power BI
model: each gold table's TMDL file gets, above every `column <name>`, the line `/// <description>`,
which Power BI shows as the column's description (tooltip in the field list).

Run it after changing a description or adding a gold column (tests/powerbi fails until the TMDL
agrees):  python -m twin_pipeline.lib.integrations.tmdl_descriptions
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from twin_pipeline.lib.column_descriptions import DESCRIPTIONS
from twin_pipeline.lib.integrations.semantic_model import DEFINITION_DIR

_COLUMN = re.compile(r"^(\t)column (?:'(?P<quoted>(?:[^']|'')+)'|(?P<bare>\S+))\s*$")


def gold_descriptions() -> dict[str, dict[str, str]]:
    """Gold table name -> column -> description."""
    return {key.split("/", 1)[1]: columns for key, columns in DESCRIPTIONS.items() if key.startswith("gold/")}


def with_descriptions(text: str, columns: dict[str, str]) -> str:
    """One table's TMDL with `/// description` above each described column (replacing what was there)."""
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        match = _COLUMN.match(line)
        name = match and (match["bare"] or match["quoted"].replace("''", "'"))
        if match and name in columns:
            while out and out[-1].startswith(match[1] + "///"):
                out.pop()
            out.append(f"{match[1]}/// {columns[name]}")
        out.append(line)
    return "\n".join(out)


def sync(definition: Path = DEFINITION_DIR) -> list[Path]:
    """Write the descriptions into every gold table's TMDL file; returns the files that changed."""
    changed = []
    for table, columns in gold_descriptions().items():
        path = definition / "tables" / f"{table}.tmdl"
        if not path.exists():
            continue  # the contract test reports a table the model lacks
        text = path.read_text(encoding="utf-8")
        new = with_descriptions(text, columns)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--definition", type=Path, default=DEFINITION_DIR, help="the semantic model's definition/")
    args = parser.parse_args(argv)
    changed = sync(args.definition)
    print(f"{len(changed)} TMDL file(s) updated" + "".join(f"\n  {p}" for p in changed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
