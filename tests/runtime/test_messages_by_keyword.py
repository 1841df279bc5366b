"""Protocol messages are built by keyword everywhere: ``p.TaskDone(task_id=..., ...)``.

A message built by position silently changes meaning when a field is added or moved
in runtime/common/protocol.py; by keyword, mypy and this test catch it.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

from jupyter_ray.runtime.common import protocol

ROOT = pathlib.Path(__file__).resolve().parents[2]
MESSAGES = {
    name
    for name, value in vars(protocol).items()
    if isinstance(value, type) and dataclasses.is_dataclass(value)
}


def _positional_builds(source: str) -> list[tuple[int, str]]:
    """(line, message) of each ``p.<Message>(...)`` given an argument by position."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "p"
            and node.func.attr in MESSAGES
            and node.args
        ):
            found.append((node.lineno, node.func.attr))
    return found


def test_every_message_is_built_by_keyword() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: p.{name}(...)"
        for folder in ("runtime", "jupyter_ray")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, name in _positional_builds(path.read_text())
    ]
    assert not offenders, "build these messages by keyword:\n" + "\n".join(offenders)


def test_the_check_sees_a_positional_build() -> None:
    assert _positional_builds("conn.send(p.QueryReply(req_id, 3))") == [(1, "QueryReply")]
    assert _positional_builds("conn.send(p.QueryReply(req_id=r, data=3))") == []
