"""Figures about the code itself, for the README's Development section.

    python bench/code_figures.py [--top N] [--under cli apply ...] [--root CHECKOUT]

Prints the largest functions by lines across the package (with a cyclomatic complexity:
1 + branches, loops, handlers and boolean operators, as radon counts, nested functions
apart), the largest in each folder named with --under (default: every subpackage), the
most complex functions, the import cycles between its modules: once
counting only imports a module runs when it is imported (module level, outside
`if TYPE_CHECKING:`), and once counting imports inside functions too (a function-level
import is how a cycle is usually hidden, not removed), and how many of the tool's modules
a test module imports directly (`--untested` lists the others). Reads source files only
(ast): nothing is imported, so it works on any checkout and whatever modules are added.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Function:
    module: str
    name: str  # qualified: Class.method, outer.<locals>.inner
    line: int
    lines: int  # from the first decorator to the last line
    code: int  # of those, lines that are neither blank nor only a comment
    complexity: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(package_dir: Path) -> Iterator[Path]:
    yield from sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError) as exc:
        print(f"warning: skipped {path}: {exc}", file=sys.stderr)
        return None


def functions(tree: ast.Module, module: str, text: list[str]) -> Iterator[Function]:
    def code_lines(first: int, last: int) -> int:
        return sum(
            1
            for line in text[first - 1 : last]
            if line.strip() and not line.lstrip().startswith("#")
        )

    def walk(node: ast.AST, prefix: str) -> Iterator[Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                # From the decorator (part of the definition) to the last line of the body.
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                last = child.end_lineno or child.lineno
                yield Function(
                    module,
                    name,
                    child.lineno,
                    last - first + 1,
                    code_lines(first, last),
                    complexity(child),
                )
                yield from walk(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


_BRANCHES = (
    ast.If,
    ast.IfExp,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ExceptHandler,
    ast.Assert,
    ast.match_case,
)


def complexity(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """1 + decision points in the function's own body (nested functions and classes are
    counted as functions of their own)."""
    count = 1
    stack: list[ast.AST] = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, _BRANCHES):
            count += 1
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            count += 1 + len(node.ifs)
        stack.extend(ast.iter_child_nodes(node))
    return count


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(
    tree: ast.Module, module: str, is_package: bool, known: set[str]
) -> Iterator[tuple[str, bool]]:
    """(imported module of the package, at module level?) for each import in the tree."""

    def resolve(node: ast.ImportFrom) -> str | None:
        if node.level == 0:
            return node.module
        base = module.split(".")
        # In a package's __init__, `.` is the package itself.
        base = base if is_package else base[:-1]
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def targets(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node)
            if source is None:
                return
            for alias in node.names:
                # `from a import b` imports the submodule a.b when there is one.
                sub = f"{source}.{alias.name}"
                yield sub if sub in known else source

    def walk(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), top)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in targets(child):
                    # `import a.b.c` names the deepest module of the package it reaches.
                    while target and target not in known:
                        target = target.rpartition(".")[0]
                    if target and target != module:
                        yield target, top
                continue
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            yield from walk(child, inner)

    yield from walk(tree, True)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


# Not the tool's logic: the command line (tested through its runs) and the emulator (which
# has tests/emulator/ of its own, over HTTP).
UNMEASURED = ("cli", "emulator")


def directly_tested(
    root: Path, package: str, known: set[str], skip: tuple[str, ...] = UNMEASURED
) -> dict[str, list[str]]:
    """For each module of the package (not a package's __init__ or __main__, nor those under
    `skip`), the test files (tests/**/test_*.py) importing it by name, at any level: the
    modules a test reaches only through the CLI or another module have an empty list."""
    measured = {
        name
        for name in known
        if name.count(".") >= 1
        and name.rsplit(".", 1)[1] != "__main__"
        and not any(name.startswith(f"{package}.{part}") for part in skip)
        and not (root / Path(*name.split("."))).is_dir()
    }
    found: dict[str, list[str]] = {name: [] for name in measured}
    for path in sorted((root / "tests").rglob("test_*.py")):
        tree = parse(path)
        if tree is None:
            continue
        test = str(path.relative_to(root))
        # The test's own name matters only for relative imports, which reach no module of
        # the package; `known` keeps the targets to the package's modules.
        for target, _top in imports(tree, module_name(path, root), False, known):
            if target in found and test not in found[target]:
                found[target].append(test)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--package", default="reconciler", help="package directory under root")
    parser.add_argument("--top", type=int, default=10, help="largest functions to list")
    parser.add_argument(
        "--under",
        nargs="*",
        default=None,
        help="subpackages to report separately (default: every one)",
    )
    parser.add_argument(
        "--untested",
        action="store_true",
        help="list the modules no test module imports directly",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    package_dir = root / args.package
    if not package_dir.is_dir():
        print(f"error: no package directory {package_dir}", file=sys.stderr)
        return 1

    trees: dict[str, tuple[Path, ast.Module]] = {}
    texts: dict[str, list[str]] = {}
    for path in source_files(package_dir):
        tree = parse(path)
        if tree is not None:
            name = module_name(path, root)
            trees[name] = (path, tree)
            texts[name] = path.read_text(encoding="utf-8").splitlines()
    known = set(trees)

    every = [f for name, (_p, tree) in trees.items() for f in functions(tree, name, texts[name])]
    every.sort(key=lambda f: (-f.lines, f.module, f.line))
    print(f"{len(trees)} modules, {len(every)} functions in {args.package}/")
    print(
        f"\nLargest functions, top {args.top} "
        "(lines from decorator to end, code lines, complexity):"
    )
    for f in every[: args.top]:
        print(f"  {f.lines:5d} {f.code:5d} {f.complexity:4d}  {f.module}:{f.line} {f.name}")
    tangled = sorted(every, key=lambda f: (-f.complexity, -f.lines, f.module))
    print(f"\nMost complex functions, top {args.top}:")
    for f in tangled[: args.top]:
        print(f"  {f.complexity:4d} {f.lines:5d}  {f.module}:{f.line} {f.name}")

    subpackages = (
        args.under
        if args.under is not None
        else sorted({m.split(".")[1] for m in known if m.count(".") >= 2})
    )
    print("\nPer subpackage: the largest function; the most complex (complexity, lines):")
    for sub in subpackages:
        prefix = f"{args.package}.{sub}"
        inside = [f for f in every if f.module == prefix or f.module.startswith(prefix + ".")]
        if not inside:
            print(f"  {sub + '/':14s} (no functions)")
            continue
        big = inside[0]
        knot = max(inside, key=lambda f: (f.complexity, f.lines))
        print(
            f"  {sub + '/':14s} {big.lines:5d} lines  {big.module}:{big.line} {big.name}\n"
            f"  {'':14s} {knot.complexity:5d} cc     {knot.module}:{knot.line} {knot.name}"
        )

    for label, module_level_only in (
        ("at import time (module level)", True),
        ("counting imports inside functions too", False),
    ):
        graph: dict[str, set[str]] = {name: set() for name in known}
        for name, (path, tree) in trees.items():
            is_package = path.name == "__init__.py"
            for target, top in imports(tree, name, is_package, known):
                if top or not module_level_only:
                    graph[name].add(target)
        found = cycles(graph)
        print(f"\nImport cycles {label}: {len(found)}")
        for component in found:
            print("  " + " <-> ".join(component))

    tested = directly_tested(root, args.package, known)
    alone = sorted(name for name, tests in tested.items() if not tests)
    print(
        f"\nModules a test imports directly (not {'/, '.join(UNMEASURED)}/, "
        f"nor __init__ or __main__): {len(tested) - len(alone)}/{len(tested)}"
    )
    if args.untested:
        for name in alone:
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
