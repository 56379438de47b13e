"""docs/configuration.md and the code cannot drift apart: every spec field and every AIRLOOP_*
variable the code reads is documented, and the doc names no field that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from include.names import ESTIMATORS, GATE_MODES
from include.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted field names; nested models expand (``source.kind``), maps and lists do not."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _fields(annotation, f"{prefix}{name}.")
        else:
            names.add(f"{prefix}{name}")
    return names


def _sections() -> dict[str, str]:
    """``### `section``` (or ``### top level``) -> its text."""
    parts = re.split(r"^### (.+)$", DOC.split("## The model spec", 1)[1], flags=re.M)
    titles = [(re.findall(r"`([^`]+)`", t) or [t.strip()])[0] for t in parts[1::2]]
    return dict(zip(titles, parts[2::2], strict=True))


def _documented(body: str) -> set[str]:
    """The names in the first column of the section's table (several per row allowed)."""
    names: set[str] = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`([^`]+)`", first))
    return names


def test_every_spec_field_is_documented_in_its_section_and_nothing_else() -> None:
    sections = _sections()
    top = {n for n in _fields(ModelSpec) if "." not in n}
    nested = {n.split(".", 1)[0] for n in _fields(ModelSpec) if "." in n}
    assert set(sections) == {"top level"} | nested
    assert _documented(sections["top level"]) == top
    for section in nested:
        expected = {n.split(".", 1)[1] for n in _fields(ModelSpec) if n.startswith(f"{section}.")}
        assert _documented(sections[section]) == expected, section


def _choices(section: str, field: str) -> set[str]:
    """The backticked values of a field's row, after its name: default and alternatives."""
    for line in _sections()[section].splitlines():
        if line.startswith(f"| `{field}` |"):
            return set(re.findall(r"`([^`]+)`", line.split("|", 2)[2]))
    raise AssertionError(f"docs/configuration.md: no row for `{field}` in section `{section}`")


def test_documented_choices_are_the_declared_names() -> None:
    assert _choices("training", "estimator") == set(ESTIMATORS)
    assert _choices("gate", "mode") == set(GATE_MODES)


def test_every_airloop_variable_the_code_reads_is_documented() -> None:
    used: set[str] = set()
    for folder in ("include", "devstack", "plugins", "dags"):
        for path in (ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r"\b(AIRLOOP_[A-Z0-9_]+)\b", path.read_text(encoding="utf-8")))
    table = DOC.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(AIRLOOP_[A-Z0-9_]+)`", table))
    assert used - documented == set()
    deployment = {(ROOT / name).read_text(encoding="utf-8") for name in ("docker-compose.yaml", ".env.example")}
    for text in deployment:
        used |= set(re.findall(r"\b(AIRLOOP_[A-Z0-9_]+)\b", text))
    assert documented - used == set()  # nothing documented that neither the code nor the stack reads
