"""The Structured Text in plc/codesys/: it parses, and the hand-written logic agrees with the tables.

No CODESYS compiler here, so the checks are: every .st file parses with blark (strict IEC 61131-3
grammar); FB_PackML implements exactly plc.packml's transition tables and default durations;
every enum member the hand-written code names exists in the tag map; and the Factory I/O mapping
only references variables FB_Line declares, with a VAR_CONFIG in FactoryIO.md that covers them.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from blark import parse_source_code

from plc.packml import COMMAND_TRANSITIONS, DEFAULT_ACTING_DURATIONS_S, STATE_COMPLETE
from plc.tagmap import TAGS

CODESYS = Path(__file__).resolve().parents[2] / "plc" / "codesys"
FB_PACKML = CODESYS / "POUs" / "FB_PackML.st"
FB_LINE = CODESYS / "POUs" / "FB_Line.st"
MAPPING = CODESYS / "factoryio_mapping.csv"
FACTORYIO_MD = CODESYS / "FactoryIO.md"
HAND_WRITTEN = (FB_PACKML, FB_LINE)

STATE_NAME = {v: k for k, v in TAGS.states.items()}
COMMAND_NAME = {v: k for k, v in TAGS.commands.items()}
ST_FILES = sorted(CODESYS.rglob("*.st"))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _strip_comments(text: str) -> str:
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _section(text: str, start: str, end: str) -> str:
    """The code from the first `start` to the next `end` after it (comments removed)."""
    code = _strip_comments(text)
    i = code.index(start)
    return code[i : code.index(end, i)]


def test_the_folder_holds_the_expected_st_files():
    names = {p.relative_to(CODESYS).as_posix() for p in ST_FILES}
    assert {"POUs/FB_PackML.st", "POUs/FB_Line.st", "POUs/PLC_PRG.st", "GVLs/Clock.st"} <= names
    assert {f"DUTs/{t}.st" for t in ("E_PackMLState", "E_PackMLCommand", "E_StopReason")} <= names


@pytest.mark.parametrize("path", ST_FILES, ids=lambda p: p.relative_to(CODESYS).as_posix())
def test_every_st_file_parses_with_blark(path: Path):
    result = parse_source_code(_read(path), fn=str(path))
    assert result.exception is None, f"{path.relative_to(CODESYS)} does not parse: {result.exception}"


def test_fb_packml_mentions_every_state():
    code = _strip_comments(_read(FB_PACKML))
    missing = [name for name in TAGS.states if f"E_PackMLState.{name}" not in code]
    assert not missing, f"FB_PackML.st never names state(s) {missing}"


def test_fb_packml_command_transitions_are_exactly_plc_packml():
    """Section 4 of FB_PackML lists one `diCommand = <cmd> THEN eTarget := <target>` per legal pair."""
    section = _section(_read(FB_PACKML), "IF fbCmdTrig.Q THEN", "xCmdRejected :=")
    found: dict[tuple[str, str], str] = {}
    state = None
    for line in section.splitlines():
        label = re.match(r"\s*E_PackMLState\.(\w+)\s*:\s*$", line)
        if label:
            state = label.group(1)
            continue
        pair = re.search(r"diCommand\s*=\s*E_PackMLCommand\.(\w+)\s+THEN\s+eTarget\s*:=\s*E_PackMLState\.(\w+)", line)
        if pair:
            assert state is not None, f"transition outside a state branch: {line.strip()}"
            key = (state, pair.group(1))
            assert key not in found, f"{key} handled twice"
            found[key] = pair.group(2)
    expected = {
        (STATE_NAME[int(s)], COMMAND_NAME[int(c)]): STATE_NAME[int(t)] for (s, c), t in COMMAND_TRANSITIONS.items()
    }
    assert found == expected
    # and every target state of a command is named in the FB (the simple form of the same check)
    for target in expected.values():
        assert f"E_PackMLState.{target}" in section


def test_fb_packml_acting_states_complete_as_plc_packml():
    section = _section(_read(FB_PACKML), "IF xActing AND fbActingTimer.Q THEN", "END_CASE")
    found = dict(re.findall(r"E_PackMLState\.(\w+)\s*:\s*eTarget\s*:=\s*E_PackMLState\.(\w+)\s*;", section))
    assert found == {STATE_NAME[int(s)]: STATE_NAME[int(t)] for s, t in STATE_COMPLETE.items()}


@pytest.mark.parametrize("path", HAND_WRITTEN, ids=lambda p: p.name)
def test_acting_durations_default_to_plc_packml(path: Path):
    code = _strip_comments(_read(path))
    for state, seconds in DEFAULT_ACTING_DURATIONS_S.items():
        m = re.search(rf"\bt{state}\s*:\s*TIME\s*:=\s*T#(\d+(?:\.\d+)?)S\s*;", code)
        assert m, f"{path.name}: no TIME input t{state} with a T#..S default"
        assert float(m.group(1)) == seconds, f"{path.name}: t{state} default {m.group(1)} s, packml says {seconds} s"


@pytest.mark.parametrize("path", HAND_WRITTEN, ids=lambda p: p.name)
def test_enum_members_named_in_hand_written_code_exist_in_the_tag_map(path: Path):
    code = _strip_comments(_read(path))
    enums = {"E_PackMLState": TAGS.states, "E_PackMLCommand": TAGS.commands, "E_StopReason": TAGS.stop_reasons}
    for enum, members in enums.items():
        used = set(re.findall(rf"\b{enum}\.(\w+)", code))
        assert used <= set(members), f"{path.name}: {enum} has no member(s) {sorted(used - set(members))}"


def test_stop_reasons_come_from_the_enum_not_from_literals():
    """StopReason values exactly as [stop_reasons]: the code uses E_StopReason, never the numbers.

    (1..999 are also the range of fault codes, so only the reasons above it are checked for literals.)"""
    for path in HAND_WRITTEN:
        code = _strip_comments(_read(path))
        for name, value in TAGS.stop_reasons.items():
            if value > 999:
                assert not re.search(rf"(?<![\w.#]){value}(?![\w.])", code), f"{path.name}: literal {value} ({name})"
    packml = _strip_comments(_read(FB_PACKML))
    for name in (
        "Starved",
        "Blocked",
        "OperatorStop",
        "OperatorHold",
        "OperatorSuspend",
        "OperatorAbort",
        "BatchComplete",
        "UnspecifiedFault",
    ):
        assert f"E_StopReason.{name}" in packml


def _fb_line_io() -> dict[str, str]:
    """FB_Line variable name -> 'I' / 'Q' for AT %I* / %Q* declarations, '' for the others."""
    decl = _strip_comments(_read(FB_LINE))
    decl = decl[: decl.rindex("END_VAR")]  # declaration part only: the body follows the last END_VAR
    return {name: at for name, at in re.findall(r"^\s*(\w+)\s*(?:AT\s+%([IQ])\*\s*)?:(?!=)", decl, flags=re.M)}


def _mapping_rows() -> list[dict[str, str]]:
    with MAPPING.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [
            "factoryio_tag",
            "kind",
            "data_type",
            "iec_address",
            "plc_variable",
            "line",
            "note",
        ]
        return list(reader)


def test_fb_line_has_the_interface_plc_prg_calls():
    io = _fb_line_io()
    for name in ("Status", "Admin", "Quality", "Command", "Sim", "xUseFactoryIO"):
        assert name in io
    code = _strip_comments(_read(FB_LINE))
    assert re.search(
        r"VAR_IN_OUT\s+Status\s*:\s*ST_Status;\s*Admin\s*:\s*ST_Admin;\s*Quality\s*:\s*ST_Quality;"
        r"\s*Command\s*:\s*ST_Command;\s*Sim\s*:\s*ST_Sim;\s*END_VAR",
        code,
    )


def test_factoryio_mapping_references_only_variables_declared_in_fb_line():
    io = _fb_line_io()
    rows = _mapping_rows()
    assert rows
    assert {r["line"] for r in rows} == {"L1", "L2"}
    for r in rows:
        where = f"{r['line']} {r['factoryio_tag']!r}"
        var = r["plc_variable"]
        assert var in io, f"{where}: {var} is not declared in FB_Line.st"
        assert r["kind"] in ("sensor", "actuator"), where
        assert r["data_type"] in ("Bool", "Float"), where
        direction = "I" if r["kind"] == "sensor" else "Q"
        assert io[var] == direction, f"{where}: {var} must be declared AT %{direction}*"
        size = "X" if r["data_type"] == "Bool" else "D"
        assert re.fullmatch(rf"%{direction}{size}\d+(\.\d)?", r["iec_address"]), f"{where}: address {r['iec_address']}"
    addresses = [r["iec_address"] for r in rows]
    assert len(addresses) == len(set(addresses)), "two Factory I/O tags share an IEC address"
    for line in ("L1", "L2"):
        tags = [r["factoryio_tag"] for r in rows if r["line"] == line]
        assert len(tags) == len(set(tags)), f"{line}: a Factory I/O tag is mapped twice"


def test_factoryio_md_var_config_covers_every_io_variable_and_matches_the_csv():
    """CODESYS refuses to build while an AT %I*/%Q* variable has no VAR_CONFIG address."""
    md = _read(FACTORYIO_MD)
    config = dict(re.findall(r"PLC_PRG\.(fb\w+\.\w+)\s+AT\s+(%[IQ][XBWD]\d+(?:\.\d)?)\s*:", md))
    io = _fb_line_io()
    for line in ("L1", "L2"):
        for var, direction in io.items():
            if direction:
                assert f"fb{line}.{var}" in config, f"FactoryIO.md VAR_CONFIG lacks PLC_PRG.fb{line}.{var}"
                assert config[f"fb{line}.{var}"].startswith(f"%{direction}")
    for r in _mapping_rows():
        assert config.get(f"fb{r['line']}.{r['plc_variable']}") == r["iec_address"], (
            f"{r['line']} {r['plc_variable']}: csv says {r['iec_address']}, FactoryIO.md says "
            f"{config.get('fb' + r['line'] + '.' + r['plc_variable'])}"
        )
