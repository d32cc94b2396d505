"""The safety policy's default removal limit is defined once, in plan/policy.py (issue 17:
it was written three times), and every place that needs it takes it from there."""

from __future__ import annotations

import ast
from pathlib import Path

from reconciler.manifest import manifest_json_schema
from reconciler.members.identity import Member
from reconciler.plan import ListPlan, list_plan
from reconciler.plan.policy import DEFAULT_MAX_REMOVAL_PERCENT
from tests.package_source import package_files, parsed

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"


def _literal_defaults(name: str) -> list[str]:
    """Places in reconciler/ that give `name` a literal number as its default."""
    found = []
    for path in package_files():
        tree = parsed(path)
        for node in ast.walk(tree):
            pairs: list[tuple[str, ast.expr | None]] = []
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                pairs.append((node.target.id, node.value))
            elif isinstance(node, ast.Assign):
                pairs += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.FunctionDef):
                args = node.args
                positional = args.posonlyargs + args.args
                pairs += list(
                    zip(
                        [a.arg for a in positional[len(positional) - len(args.defaults) :]],
                        args.defaults,
                        strict=True,
                    )
                )
                pairs += [
                    (a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                ]
            for target, value in pairs:
                if (
                    target.lower() == name.lower()
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, int | float)
                ):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_the_default_removal_limit_is_written_once():
    assert _literal_defaults("max_removal_percent") == []
    defined = _literal_defaults("DEFAULT_MAX_REMOVAL_PERCENT")
    assert [place.split(":")[0] for place in defined] == ["reconciler/plan/policy.py"]


def test_the_model_the_planner_and_the_schema_share_the_default():
    member = Member("a@example.com", "email", email="a@example.com")
    made = list_plan(
        audience="a",
        list_name="a",
        description=None,
        live_list_id=1,
        add=(member,),
        remove=(),
        desired_count=1,
        live_count=0,
    )
    direct = ListPlan("a", "a", 1, False, None, (), (), 0, 0, 0)
    assert made.max_removal_percent == direct.max_removal_percent == DEFAULT_MAX_REMOVAL_PERCENT
    schema = manifest_json_schema()
    text = str(schema)
    assert (
        f"(compared with '>'; default: the destination's, else {DEFAULT_MAX_REMOVAL_PERCENT:g})"
        in text
    )
