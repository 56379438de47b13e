"""Read docker-compose.yaml the way `docker compose` does, without Docker: YAML (anchors and merge
keys resolved by PyYAML), then ``${VAR}`` interpolation from a given environment.

Supported syntax (the Compose Specification's): ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``, ``${VAR:+alt}``, ``${VAR+alt}``, with
interpolation inside defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MissingVariable(KeyError):
    """A ``${VAR:?message}`` / ``${VAR?message}`` without a value: compose refuses to start."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(name)
        self.name = name
        self.message = message


def load_raw(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML, before interpolation."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    assert isinstance(data, dict)
    return data


def _braced_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose ``{`` is at ``start``."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unclosed ${{ in {text!r}")


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _braced_end(text, i + 1)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
            continue
        match = _NAME.match(text, i + 1)
        if match:
            out.append(env.get(match.group(0), ""))
            i = match.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _expand(body: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(body)
    if not match:
        raise ValueError(f"invalid interpolation ${{{body}}}")
    name, rest = match.group(0), body[match.end() :]
    value = env.get(name)
    if not rest:
        return value or ""
    for operator in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(operator):
            argument = rest[len(operator) :]
            unset_or_empty = not value if operator.startswith(":") else value is None
            if operator.endswith("-"):
                return interpolate_string(argument, env) if unset_or_empty else str(value)
            if operator.endswith("?"):
                if unset_or_empty:
                    raise MissingVariable(name, argument)
                return str(value)
            return "" if unset_or_empty else interpolate_string(argument, env)
    raise ValueError(f"invalid interpolation ${{{body}}}")


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string (values only, as compose does) of a parsed compose file."""
    if isinstance(node, str):
        return interpolate_string(node, env)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return node


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def required_variables(path: Path = COMPOSE_FILE) -> set[str]:
    """Every variable written ``${VAR:?...}`` or ``${VAR?...}`` in the file's values (not comments)."""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")
    return {name for text in _strings(load_raw(path)) for name in pattern.findall(text)}


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=value lines of a .env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values
