"""The package's structure (issue 17): no import cycles anywhere in reconciler/, and a
pure planner: plan/ reaches no HTTP client, manifest parser, schema library or database,
so it can be read, tested and reused without any of them.

The graph is read from the source (every import statement, also those inside functions
and under TYPE_CHECKING: a cycle hidden there is still two modules that need each other),
and purity is also checked at run time, in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tests.package_source import parsed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reconciler"

# Cycles allowed, each wholly inside one package: none since sources/ became one module
# per kind (issue 17). Kept as a named exception list so an allowance is reviewed.
ALLOWED_CYCLE_PACKAGES: tuple[str, ...] = ()

# What the planner must never load: the HTTP client's library, the manifest schema and
# parser, templates, databases and terminals.
NOT_IN_PLAN = {
    "httpx",
    "pydantic",
    "pydantic_core",
    "ruamel",
    "jinja2",
    "duckdb",
    "sqlalchemy",
    "psycopg",
    "jsonschema",
    "rich",
    "typer",
}
# Standard-library modules that do I/O (files, network, processes, threads). The plan file
# module reads and writes plan files, and needs the first three of them.
IO_MODULES = {
    "os",
    "tempfile",
    "gzip",
    "shutil",
    "socket",
    "ssl",
    "http",
    "urllib",
    "subprocess",
    "sqlite3",
    "threading",
    "asyncio",
    "concurrent",
}
PLAN_FILE_IO = {"os", "tempfile", "gzip"}


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under `if TYPE_CHECKING:` (imported for annotations only)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return out


def imported_names(
    module: str, path: Path, known: Iterable[str], *, annotations: bool = True
) -> set[str]:
    """Every module `module` imports (`from pkg import sub` counts as importing pkg.sub when
    that is a module), relative imports resolved; third-party and stdlib names as given.
    `annotations=False` leaves out imports made only for type checkers."""
    known = set(known)
    out: set[str] = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = parsed(path)
    skipped = set() if annotations else _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = package[: len(package) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return out


def import_graph(annotations: bool = True) -> dict[str, set[str]]:
    """Module -> the reconciler modules it imports (with `annotations=False`, at run time)."""
    found = modules()
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        targets = set()
        for target in imported_names(name, path, found, annotations=annotations):
            # `import reconciler.a.b.c` where c is a name in b: the module is b.
            while target not in found and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in found and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def closure(graph: dict[str, set[str]], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def _allowed(component: list[str]) -> bool:
    return any(
        all(m == p or m.startswith(p + ".") for m in component) for p in ALLOWED_CYCLE_PACKAGES
    )


def test_cycle_finder_finds_a_cycle_and_only_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_reconciler_has_no_import_cycles():
    graph = import_graph()
    assert "reconciler.plan.planner" in graph  # the graph is of the real package
    found = [c for c in cycles(graph) if not _allowed(c)]
    described = [
        " <-> ".join(c) + ": " + "; ".join(f"{m} imports {sorted(graph[m] & set(c))}" for m in c)
        for c in found
    ]
    assert found == [], "\n".join(described)


def test_the_planner_imports_no_io_or_third_party_library_statically():
    """What plan/ loads when it runs; a type named only in annotations may live anywhere."""
    found = modules()
    graph = import_graph(annotations=False)
    plan = sorted(m for m in graph if m == "reconciler.plan" or m.startswith("reconciler.plan."))
    assert "reconciler.plan.planner" in plan and "reconciler.plan.file" in plan
    reached = closure(graph, plan)
    problems = []
    for module in sorted(reached):
        names = imported_names(module, found[module], found, annotations=False)
        tops = {name.split(".")[0] for name in names}
        allowed_io = PLAN_FILE_IO if module == "reconciler.plan.file" else set()
        bad = (tops & NOT_IN_PLAN) | ((tops & IO_MODULES) - allowed_io)
        if bad:
            problems.append(f"{module} imports {sorted(bad)}")
    assert problems == [], "plan/ reaches " + "; ".join(problems)


def test_the_planner_loads_no_third_party_library_at_run_time():
    plan = sorted(
        m for m in modules() if m == "reconciler.plan" or m.startswith("reconciler.plan.")
    )
    code = (
        "import importlib, json, sys\n"
        f"for name in {plan!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert "reconciler" in loaded
    assert loaded & NOT_IN_PLAN == set()
