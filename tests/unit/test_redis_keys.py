"""Every Redis key name vtrack writes is spelled in one module, tasks/keys.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tasks", "workers", "config", "entrypoints")
# Modules that still name a key themselves (to be moved into tasks/keys.py).
ALLOWED = {"tasks/keys.py"}
KEY_LITERAL = re.compile(r"^vtrack:[\w*-]")


def test_no_module_but_tasks_keys_spells_a_vtrack_key() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=name)):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and KEY_LITERAL.match(node.value)
                ):
                    offenders.append(f"{name}:{node.lineno}: {node.value!r}")
    assert offenders == []
