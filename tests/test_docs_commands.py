"""The README and docs/ cannot rot: every command they show runs with `--help`, every flag they show
exists, every relative link and every repository path they name exists.

Why: the layout moves (issue 13) and a doc that names a flag, a module or a file that is gone sends
the next person down a dead end. Commands are parsed from the fenced shell blocks (```bash, ```sh,
```shell, ```console) of README.md and docs/**/*.md, and from their inline code spans. A command
counts when it invokes one of the project's CLIs (`twin`, `plc-sim`, `edge-collector`),
`.venv/bin/...`, `python -m`, `pytest`, `dagster`, `dg` or `make <target>`; other programs
(`databricks`, `npm`, `export`) are not ours.

How each is checked (fast: Python CLIs run in-process, each help text once):
- the command's subcommand path (the words before the first option) is run with `--help` appended
  and must exit 0; each option the line shows (`--days`, `-m`) must appear in that help text;
- the project's console scripts come from `[project.scripts]` of pyproject.toml (what the docs
  promise), third-party ones (`dagster`, `dg`) from the installed entry points; `python -m X` and
  `python file.py` run through runpy; pytest in a subprocess (a pytest inside pytest shares state);
- `make <target>` must be a target (`make -n <target>`); `ARGS="..."` is followed into the command
  the Makefile passes it to, which is then checked like any other;
- `cd <dir>` must name an existing folder; `dagster ... -m <module>` an importable module.
Links (with their #anchors) and repository paths in `code` are checked in every Markdown file of the
repository, the READMEs beside the code included.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: Every Markdown file of the repository (the READMEs beside the code too): links and paths are checked in all.
MARKDOWN = sorted(
    p
    for p in ROOT.rglob("*.md")
    if not any(part.startswith(".") or part == "node_modules" for part in p.relative_to(ROOT).parts)
)
#: Paths a doc tells the reader to create, so they are not in the repository.
TO_BE_CREATED = {"powerbi/parameter.yml"}
SHELL_BLOCK = re.compile(r"^[ \t]*```(bash|sh|shell|console)[ \t]*\n(.*?)^[ \t]*```", re.M | re.S)
PROJECT_SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
OURS = {*PROJECT_SCRIPTS, "dagster", "dg", "make", "pytest", "python", "python3"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: Top-level names a doc may cite as a repository path (in `code`); placeholders are never checked.
REPO_PATH = re.compile(
    r"^(?:(?:plc|edge_collector|twin_pipeline|powerbi|tests|bench|docs)/[\w./-]*"
    r"|workspace\.yaml|pyproject\.toml|uv\.lock|Makefile|\.env\.example|package\.json)$"
)


@dataclass(frozen=True)
class Command:
    """One command line of a doc, split into words (environment assignments and `.venv/bin/` dropped)."""

    doc: str
    line: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {shlex.join(self.words)}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.M | re.S)


def _prose(doc: Path) -> str:
    """The doc without its fenced blocks (trees and snippets are not links or paths)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), doc.read_text())


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command text) of every fenced shell block, continuations joined, prompts removed."""
    found: list[tuple[int, str]] = []
    for block in SHELL_BLOCK.finditer(text):
        console = block.group(1) == "console"
        first = text.count("\n", 0, block.start(2)) + 1
        pending, start = "", 0
        for offset, raw in enumerate(block.group(2).splitlines()):
            line = raw.strip()
            if not pending:
                if console:
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                start = first + offset
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            found.append((start, pending + line))
            pending = ""
    return found


def _split(text: str) -> list[list[str]]:
    """A shell line as its simple commands (split on `&&`, `||`, `;`, `|`), comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();|&")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    redirect = False
    for token in lexer:
        if redirect:  # the file of `> file`: not an argument
            redirect = False
        elif re.fullmatch(r"\d*(>>?|<)", token):
            redirect = True
        elif token and set(token) <= set("();|&"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _inline_commands(doc: Path) -> list[tuple[int, str]]:
    """(line number, text) of each `code span` of the prose that is a command of ours, e.g. `twin up`."""
    prose, found, seen = _prose(doc), [], set()
    for match in CODE_SPAN.finditer(prose):
        text = match.group(1).strip()
        words = text.split()
        if len(words) < 2 or text in seen:
            continue
        if words[0].removeprefix(".venv/bin/") in OURS or words[0].startswith(".venv/bin/"):
            seen.add(text)
            found.append((prose.count("\n", 0, match.start()) + 1, text))
    return found


def _commands() -> tuple[list[Command], list[tuple[str, int, str]]]:
    """Every command of ours in the docs, and every `cd <dir>` (doc, line, dir)."""
    commands: list[Command] = []
    cds: list[tuple[str, int, str]] = []
    for doc in DOCS:
        for number, text in [*_shell_lines(doc.read_text()), *_inline_commands(doc)]:
            for words in _split(text):
                while words and ENV_ASSIGNMENT.match(words[0]):
                    words = words[1:]
                if not words:
                    continue
                if words[0] == "cd" and len(words) == 2:
                    cds.append((_rel(doc), number, words[1]))
                    continue
                program = words[0].removeprefix(".venv/bin/")
                if program in OURS or words[0].startswith(".venv/bin/"):
                    commands.append(Command(_rel(doc), number, (program, *words[1:])))
    return commands, cds


COMMANDS, CDS = _commands()


def _options(words: tuple[str, ...]) -> list[str]:
    return sorted({w.split("=", 1)[0] for w in words if re.match(r"^--?[A-Za-z]", w)})


def _subcommand(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words before the first option: the program and its subcommands (and positionals);
    for `python -m module` and `python file.py`, the module or file is the program."""
    start = 3 if words[0] in ("python", "python3") and words[1:2] == ("-m",) else 1
    path = list(words[:start])
    for word in words[start:]:
        if word.startswith("-"):
            break
        path.append(word)
    return tuple(path)


@dataclass(frozen=True)
class Help:
    """What `<command> --help` gave: its exit code and its output (stdout and stderr)."""

    code: int
    text: str


def _exit_code(exc: SystemExit) -> int:
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[io.StringIO]:
    saved = sys.argv[:]
    sys.argv = argv
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield out
    finally:
        sys.argv = saved


def _in_process(argv: list[str], call: Callable[[], object]) -> Help:
    """`call()` as if run as `argv`, its output captured; an exception counts as exit code 1."""
    with _argv(argv) as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a library's import-time warning is not what this test is about
        try:
            result = call()
        except SystemExit as exc:
            return Help(_exit_code(exc), out.getvalue())
        except Exception:  # noqa: BLE001 - an import error, a moved module: report it as the shell would
            return Help(1, out.getvalue() + traceback.format_exc())
    return Help(result if isinstance(result, int) else 0, out.getvalue())


def _entry_point(program: str) -> Callable[[], object] | None:
    """The function a console script calls: ours from pyproject.toml, others from what is installed."""
    if program in PROJECT_SCRIPTS:
        module, _, attr = PROJECT_SCRIPTS[program].partition(":")
        main: Callable[[], object] = getattr(importlib.import_module(module), attr)
        return main
    found = list(entry_points(group="console_scripts", name=program))
    return found[0].load() if found else None


def help_of(path: tuple[str, ...]) -> Help:
    """`<path> --help`: exit code and text. `path` is a subcommand path from `_subcommand`."""
    if path[0] == "pytest" or path[:3] in (("python", "-m", "pytest"), ("python3", "-m", "pytest")):
        path = ("pytest",)  # no subcommands: one help text, whatever the positionals
    return _help_of(path)


@cache
def _help_of(path: tuple[str, ...]) -> Help:
    program, args = path[0], [*path[1:], "--help"]
    if program in ("python", "python3"):
        if args[0] == "-m" and len(args) > 2:
            module = args[1]
            return _in_process(
                [module, *args[2:]], lambda: runpy.run_module(module, run_name="__main__", alter_sys=True)
            )
        elif args[0].endswith(".py"):
            script = str(ROOT / args[0])
            return _in_process([script, *args[1:]], lambda: runpy.run_path(script, run_name="__main__"))
    if program == "pytest":  # a pytest inside this one would share its plugins and state
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--noconftest", "-p", "no:cacheprovider", "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Help(done.returncode, done.stdout + done.stderr)
    main = _entry_point(program)
    if main is None:
        return Help(127, f"{program}: not installed")
    return _in_process([program, *args], main)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.words[0] != "make"], ids=str)
def test_each_documented_command_has_help_and_every_flag_it_shows(command: Command) -> None:
    _check(command, command.words)


def _check(command: Command, words: tuple[str, ...]) -> None:
    path = _subcommand(words)
    shown = help_of(path)
    assert shown.code == 0, f"{command}\n`{shlex.join(path)} --help` exited {shown.code}:\n{shown.text[-2000:]}"
    missing = [
        o for o in _options(words[len(path) :]) if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", shown.text)
    ]
    assert not missing, f"{command}\n`{shlex.join(path)} --help` has no {missing}"
    if path[0] == "dagster" and "-m" in words:
        module = words[words.index("-m") + 1]
        assert importlib.util.find_spec(module), f"{command}\nno module {module}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.words[0] == "make"], ids=str)
def test_each_documented_make_target_exists_and_its_args_reach_a_real_flag(command: Command) -> None:
    assert shutil.which("make"), "make is needed to build this project"
    targets = [w for w in command.words[1:] if not w.startswith("-") and "=" not in w]
    variables = [w for w in command.words[1:] if "=" in w]
    assert targets, f"{command}: no target"
    for target in targets:
        dry = subprocess.run(
            ["make", "-n", target, *variables],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=_env_without_make(),
        )
        assert dry.returncode == 0, f"{command}\n`make -n {target}` failed:\n{dry.stderr[-2000:]}"
        args = next((v.split("=", 1)[1] for v in variables if v.startswith("ARGS=")), "")
        if args:
            recipe = [line for line in dry.stdout.splitlines() if line.rstrip().endswith(args)]
            assert recipe, f"{command}\n`make -n {target}` passes ARGS to no command:\n{dry.stdout}"
            words = tuple(shlex.split(recipe[-1]))
            words = (words[0].removeprefix(".venv/bin/"), *words[1:])
            _check(command, words)


def _env_without_make() -> dict[str, str]:
    """This environment without the variables of a make that may be running pytest (`make test`)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def test_the_docs_show_the_commands_a_newcomer_needs() -> None:
    """A guard on the parser itself: an empty list would pass every test above."""
    shown = {shlex.join(c.words[:2]) for c in COMMANDS}
    assert {"make run", "make test", "twin up"} <= shown, shown


#: `cd` lines with a placeholder (`cd <dir>`, `cd $X`) name no folder of the repository: not checked.
REPO_CDS = [cd for cd in CDS if not re.search(r"[<$~{]", cd[2])]


@pytest.mark.parametrize("doc, line, folder", REPO_CDS, ids=lambda v: str(v))
def test_each_cd_names_a_folder_of_the_repository(doc: str, line: int, folder: str) -> None:
    assert (ROOT / folder).is_dir(), f"{doc}:{line}: cd {folder}: no such folder"


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces -> '-'."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", _prose(doc), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", MARKDOWN, ids=_rel)
def test_every_relative_link_points_at_a_file_of_the_repository(doc: Path) -> None:
    broken = []
    for match in LINK.finditer(_prose(doc)):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        file = doc.parent / path if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            broken.append(target)
    assert not broken, f"{_rel(doc)}: broken links {broken}"


@pytest.mark.parametrize("doc", MARKDOWN, ids=_rel)
def test_every_repository_path_the_doc_names_exists(doc: Path) -> None:
    missing = []
    for match in CODE_SPAN.finditer(_prose(doc)):
        text = match.group(1).strip().rstrip(".,:;")
        if REPO_PATH.match(text) and text not in TO_BE_CREATED and not (ROOT / text).exists():
            missing.append(text)
    assert not missing, f"{_rel(doc)}: no such paths {sorted(set(missing))}"
