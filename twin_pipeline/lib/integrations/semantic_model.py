"""The Power BI semantic model as it is kept in git (`powerbi/`, TMDL), read without Power BI.

Why read it here: the Dagster definitions must load offline, so the semantic model's asset is built
from the PBIP project itself (its tables' partitions name the gold tables they read), and the
contract test compares the same parse with the gold schemas in `schemas.py`.

This reads the subset of TMDL the project uses: objects (`table`, `column`, `measure`, `partition`,
`relationship`, `expression`, `annotation`, ...), `name: value` properties, bare flags (`isHidden`),
`///` descriptions, and expressions after `=`, on the same line or on the lines below indented two
levels deeper than the line that opens them. Indentation is tabs, as Power BI writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: The PBIP project and its semantic model's TMDL folder.
PROJECT_DIR = Path(__file__).resolve().parents[3] / "powerbi"
MODEL_NAME = "IndustrialTwin"
DEFINITION_DIR = PROJECT_DIR / f"{MODEL_NAME}.SemanticModel" / "definition"

#: The navigation steps of Power Query connectors, `[Name="fact_oee_shift",Kind="Table"]`: the same
#: pattern dagster-powerbi parses for lineage (`dagster_powerbi.translator.PARSE_M_QUERY_OBJECT`).
M_NAVIGATION = re.compile(r'\[Name="(?P<name>[^"]+)",Kind="(?P<kind>[^"]+)"\]')
#: The ADLS branch of a partition: the table's Delta folder under the `AdlsRoot` parameter.
ADLS_FOLDER = re.compile(r'AdlsRoot\s*&\s*"/gold/(?P<name>[^"/]+)"')
#: The folder the ADLS branch reads (an M text expression), and every navigation step of a partition
#: whose name is a parameter or a literal (`{[Name=DatabricksCatalog,Kind="Database"]}`).
DATA_LAKE_FOLDER = re.compile(r"AzureStorage\.DataLake\(\s*(?P<expr>[^,()]+?)\s*[,)]")
NAVIGATION_STEP = re.compile(r'\{\[Name=(?P<name>"[^"]*"|\w+),Kind="(?P<kind>\w+)"\]\}')

_OBJECTS = frozenset(
    {
        "model",
        "database",
        "table",
        "column",
        "measure",
        "partition",
        "relationship",
        "expression",
        "annotation",
        "hierarchy",
        "level",
        "ref",
        "role",
        "tablePermission",
        "columnPermission",
        "perspective",
        "perspectiveTable",
        "perspectiveColumn",
        "perspectiveMeasure",
        "perspectiveHierarchy",
        "calculationGroup",
        "calculationItem",
        "cultureInfo",
        "linguisticMetadata",
        "queryGroup",
        "function",
        "extendedProperty",
        "dataSource",
    }
)
_PROPERTY = re.compile(r"^(\w+)\s*:\s*(.*)$")
_ASSIGNMENT = re.compile(r"^(\w+)\s*=\s*(.*)$")
_FLAG = re.compile(r"^\w+$")


class TmdlError(ValueError):
    """A TMDL file this reader cannot make sense of, with the file and line."""


@dataclass
class Node:
    """One TMDL object (or a property that holds an expression), with what is nested in it."""

    keyword: str
    name: str
    value: str | None = None
    description: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)

    def all(self, keyword: str) -> list[Node]:
        return [c for c in self.children if c.keyword == keyword]


def parse(text: str, source: str = "<tmdl>") -> list[Node]:
    """The top-level objects of one TMDL document."""
    lines = text.splitlines()
    root = Node("", "")
    stack: list[tuple[int, Node]] = [(-1, root)]
    description: list[str] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        if not raw.strip():
            i += 1
            continue
        depth = len(raw) - len(raw.lstrip("\t"))
        if raw[depth] == " ":
            raise TmdlError(f"{source}:{i + 1}: indented with spaces; TMDL is indented with tabs")
        body = raw.strip()
        if body.startswith("///"):
            description.append(body[3:].strip())
            i += 1
            continue
        while stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1]
        word = body.split(None, 1)[0].rstrip(":")
        if (prop := _PROPERTY.match(body)) and word not in _OBJECTS:
            parent.properties[prop.group(1)] = prop.group(2).strip()
            i += 1
            continue
        if word in _OBJECTS:
            name, rest = _split_name(body[len(word) :].strip(), f"{source}:{i + 1}")
            node = Node(word, name, description=" ".join(description))
        elif assignment := _ASSIGNMENT.match(body):
            node, rest = Node(assignment.group(1), ""), "= " + assignment.group(2)
        elif _FLAG.match(body):
            parent.properties[body] = "true"
            i += 1
            continue
        else:
            raise TmdlError(f"{source}:{i + 1}: cannot read {body!r}")
        description = []
        i += 1
        if rest.startswith("="):
            node.value, i = _expression(rest[1:].strip(), lines, i, depth)
        parent.children.append(node)
        stack.append((depth, node))
    return root.children


def _split_name(text: str, where: str) -> tuple[str, str]:
    """The object's name (quoted with '' or bare) and what follows it (`= expression` or nothing)."""
    if text.startswith("'"):
        j, name = 1, []
        while True:
            k = text.find("'", j)
            if k < 0:
                raise TmdlError(f"{where}: unterminated quoted name")
            name.append(text[j:k])
            if text[k + 1 : k + 2] == "'":
                name.append("'")
                j = k + 2
                continue
            return "".join(name), text[k + 1 :].strip()
    head, eq, tail = text.partition("=")
    return head.strip(), (eq + tail).strip()


def _expression(first: str, lines: list[str], i: int, depth: int) -> tuple[str, int]:
    """An expression that starts after `=`: the rest of that line, then every following line indented
    at least two levels deeper (blank lines inside it kept). Returns it and the next line to read."""
    if first == "```":  # a fenced expression runs to the closing fence
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        return _dedent(body), i + 1
    body = []
    while i < len(lines):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip("\t")) < depth + 2:
            break
        body.append(line)
        i += 1
    while body and not body[-1].strip():
        body.pop()
    text = _dedent(body)
    return (f"{first}\n{text}".strip() if first else text), i


def _dedent(lines: list[str]) -> str:
    indents = [len(line) - len(line.lstrip("\t")) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines)


def split_reference(reference: str) -> tuple[str, str]:
    """`table.column` of a relationship, either part possibly quoted (`'_Measures'.'Loss Step'`)."""
    parts, current, quoted, j = [], [], False, 0
    while j < len(reference):
        ch = reference[j]
        if ch == "'":
            if quoted and reference[j + 1 : j + 2] == "'":
                current.append("'")
                j += 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        j += 1
    parts.append("".join(current))
    if len(parts) != 2:
        raise TmdlError(f"{reference!r} is not table.column")
    return parts[0].strip(), parts[1].strip()


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    properties: dict[str, str]
    description: str


@dataclass(frozen=True)
class Measure:
    name: str
    expression: str
    properties: dict[str, str]
    description: str


@dataclass(frozen=True)
class Partition:
    name: str
    kind: str  # m, calculated, entity, ...
    mode: str
    source: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, Column]
    measures: dict[str, Measure]
    partitions: list[Partition]
    properties: dict[str, str]


@dataclass(frozen=True)
class Relationship:
    name: str
    from_table: str
    from_column: str
    to_table: str
    to_column: str
    properties: dict[str, str]


@dataclass(frozen=True)
class SemanticModel:
    tables: dict[str, Table]
    relationships: list[Relationship]
    expressions: dict[str, Node]

    def source_tables(self, table: str) -> tuple[list[str], list[str]]:
        """The gold tables a table's import partitions read: (Databricks `Kind="Table"` steps, ADLS folders)."""
        databricks, adls = [], []
        for partition in self.tables[table].partitions:
            if partition.kind == "m":
                databricks += [m["name"] for m in M_NAVIGATION.finditer(partition.source) if m["kind"] == "Table"]
                adls += [m["name"] for m in ADLS_FOLDER.finditer(partition.source)]
        return databricks, adls

    def m_source(self, table: str) -> str:
        (partition,) = [p for p in self.tables[table].partitions if p.kind == "m"]
        return partition.source

    def adls_folder(self, table: str, parameters: dict[str, str]) -> str:
        """The folder a table's ADLS branch reads, with these parameter values."""
        found = DATA_LAKE_FOLDER.search(self.m_source(table))
        if not found:
            raise TmdlError(f"{table}: no AzureStorage.DataLake(<folder>, ...) in its partition")
        return m_text(found["expr"], parameters)

    def databricks_table(self, table: str, parameters: dict[str, str]) -> str:
        """`catalog.schema.table` that a table's Databricks branch navigates to, with these parameter values."""
        steps = {m["kind"]: m_text(m["name"], parameters) for m in NAVIGATION_STEP.finditer(self.m_source(table))}
        return ".".join(steps.get(kind, f"<no {kind} step>") for kind in ("Database", "Schema", "Table"))

    def gold_tables(self) -> list[str]:
        """Every gold table the model imports (its Databricks navigation steps), sorted."""
        return sorted({name for table in self.tables for name in self.source_tables(table)[0]})


def m_text(expression: str, parameters: dict[str, str]) -> str:
    """The value of an M text expression made of literals and parameters joined by `&`
    (`AdlsRoot & "/gold/fact_oee_shift"`); anything else is an error."""
    parts = []
    for term in expression.split("&"):
        term = term.strip()
        if len(term) >= 2 and term[0] == term[-1] == '"':
            parts.append(term[1:-1].replace('""', '"'))
        elif term in parameters:
            parts.append(parameters[term])
        else:
            raise TmdlError(f"{expression!r}: {term!r} is neither a text literal nor one of {sorted(parameters)}")
    return "".join(parts)


def parameter_values(model: SemanticModel) -> dict[str, str]:
    """The parameters' current values as written in the TMDL (`"value" meta [IsParameterQuery=true, ...]`)."""
    values = {}
    for name, node in model.expressions.items():
        found = re.match(r'\s*"((?:[^"]|"")*)"\s+meta\s*\[IsParameterQuery=true', node.value or "")
        if found:
            values[name] = found[1].replace('""', '"')
    return values


def load(definition: Path = DEFINITION_DIR) -> SemanticModel:
    """Parse a semantic model's `definition/` folder (every .tmdl file, so a syntax error anywhere fails)."""
    if not (definition / "model.tmdl").exists():
        raise FileNotFoundError(f"no TMDL semantic model at {definition} (expected model.tmdl there)")
    tables: dict[str, Table] = {}
    relationships: list[Relationship] = []
    expressions: dict[str, Node] = {}
    for path in sorted(definition.rglob("*.tmdl")):
        for node in parse(path.read_text(encoding="utf-8"), str(path)):
            if node.keyword == "table":
                tables[node.name] = _table(node)
            elif node.keyword == "relationship":
                (ft, fc), (tt, tc) = (split_reference(node.properties[k]) for k in ("fromColumn", "toColumn"))
                relationships.append(Relationship(node.name, ft, fc, tt, tc, node.properties))
            elif node.keyword == "expression":
                expressions[node.name] = node
    return SemanticModel(tables, relationships, expressions)


def _table(node: Node) -> Table:
    columns = {
        c.name: Column(c.name, c.properties.get("dataType", ""), c.properties, c.description)
        for c in node.all("column")
    }
    measures = {m.name: Measure(m.name, m.value or "", m.properties, m.description) for m in node.all("measure")}
    partitions = []
    for p in node.all("partition"):
        source = next((c.value or "" for c in p.children if c.keyword == "source"), "")
        partitions.append(Partition(p.name, p.value or "", p.properties.get("mode", ""), source))
    return Table(node.name, columns, measures, partitions, node.properties)
