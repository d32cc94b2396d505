"""Plans and apply reports for people (text) and machines (JSON)."""

from __future__ import annotations

import json
from typing import Any

import jinja2

from reconciler.apply import ApplyReport
from reconciler.identity import Member
from reconciler.plan import ListPlan, Plan

SAMPLE = 10

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("reconciler.render", "templates"),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # plain text for a terminal, not HTML
)


def _list_ref(lp: ListPlan) -> str:
    return f" (list {lp.list_id})" if lp.list_id is not None else " (new list)"


def _member_label(member: Member) -> str:
    if member.key_kind == "userId" and member.email is not None:
        return f"{member.key} <{member.email}>"
    return member.key


def plan_text(plan: Plan, sample: int = SAMPLE) -> str:
    template = _env.get_template("plan.txt.j2")
    return template.render(
        plan=plan, s=plan.summary, sample=sample, list_ref=_list_ref, member_label=_member_label
    )


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=False)


def report_text(report: ApplyReport) -> str:
    lists = [lr for d in report.destinations for lr in d.lists]
    totals: dict[str, Any] = {
        "created": sum(lr.created for lr in lists),
        "added": sum(lr.added for lr in lists),
        "removed": sum(lr.removed for lr in lists),
        "rejected": sum(len(lr.rejected) for lr in lists),
        "errors": sum(len(lr.errors) for lr in lists),
    }
    return _env.get_template("report.txt.j2").render(report=report, totals=totals)


def report_json(report: ApplyReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
