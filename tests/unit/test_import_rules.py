"""The import rules of docs/architecture.md, read from the source: every import statement,
those inside functions (lazy imports) and under ``if TYPE_CHECKING:`` included (tasks.api
declares there the names it imports on first use).

A rule that does not hold yet names its exceptions below; each must still be needed (the
test fails once one is fixed, so the list only shrinks).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("entrypoints", "tasks", "config", "workers")
SERVICE_LIBRARIES = ("celery", "redis", "kombu")

# entrypoints/ uses the job API: tasks.api, tasks.scan (scans build on tasks.api, so
# tasks.api cannot hand them on without a cycle) and the records they return
# (tasks.jobstore); workers/ for evaluation, export, storage, URIs and errors; the settings.
FRONT_END_MAY_IMPORT = ("tasks.api", "tasks.scan", "tasks.jobstore", "config.settings")
# kombu's URL helper only hides the password of a Redis URL the cluster prints.
FRONT_END_MAY_IMPORT_EXTERNAL = ("kombu.utils.url",)
FRONT_END_EXCEPTIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # a module of ours, or the dotted name of another library's
    line: int

    @property
    def ours(self) -> bool:
        return self.target.split(".")[0] in PACKAGES

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}:{node.lineno}: a relative import"
            base = node.module or ""
            # `from tasks import runtime` imports the module tasks.runtime
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target.split(".")[0] in PACKAGES:  # `import a.b.c`: the longest module
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
            found.append(Import(name, target, node.lineno))
    return found


MODULES = _modules()
IMPORTS = [imp for name, path in MODULES.items() for imp in _imports(name, path, MODULES)]


def _package(module: str) -> str:
    return module.split(".")[0]


def test_front_ends_use_the_job_api_only() -> None:
    refused = set()
    for imp in IMPORTS:
        if _package(imp.source) != "entrypoints" or _package(imp.target) == "entrypoints":
            continue
        if imp.ours:
            allowed = imp.target in FRONT_END_MAY_IMPORT or _package(imp.target) == "workers"
        else:
            allowed = imp.target.startswith(FRONT_END_MAY_IMPORT_EXTERNAL) or (
                _package(imp.target) not in SERVICE_LIBRARIES
            )
        if not allowed:
            refused.add(imp)
    pairs = {(imp.source, imp.target) for imp in refused}
    assert pairs - FRONT_END_EXCEPTIONS == set(), sorted(map(str, refused))
    assert FRONT_END_EXCEPTIONS - pairs == set(), "fixed: remove from FRONT_END_EXCEPTIONS"


def test_nothing_imports_the_front_ends() -> None:
    assert [
        str(imp)
        for imp in IMPORTS
        if _package(imp.target) == "entrypoints" and _package(imp.source) != "entrypoints"
    ] == []


def test_config_imports_neither_tasks_nor_front_ends() -> None:
    assert [
        str(imp)
        for imp in IMPORTS
        if _package(imp.source) == "config" and _package(imp.target) in ("tasks", "entrypoints")
    ] == []


def test_workers_know_nothing_of_the_service() -> None:
    forbidden = ("tasks", "config", "entrypoints", *SERVICE_LIBRARIES)
    assert [
        str(imp)
        for imp in IMPORTS
        if _package(imp.source) == "workers" and _package(imp.target) in forbidden
    ] == []


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for following in edges[node]:
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = {stack.pop()}
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in IMPORTS:
        if imp.ours and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    assert _cycles(edges) == []


def test_the_reader_sees_every_kind_of_import() -> None:
    """The rules above are only as good as this reader: a lazy import, one for type
    checkers and a module imported from its package are all found."""
    found = {(imp.source, imp.target) for imp in IMPORTS}
    assert ("entrypoints.cli", "entrypoints.web.server") in found  # inside a function
    assert ("entrypoints.cli", "tasks.jobstore") in found  # under TYPE_CHECKING
    assert ("tasks.jobs", "tasks.runtime") in found  # from tasks import runtime
