"""What the work budget of trait templates (reconciler/traits/template.py) costs per row.

    python bench/template_budget.py [ROWS] [--template TEXT]...

Renders each template for ROWS generated rows with reconciler's Template (the bounded
sandbox) and with jinja2's plain SandboxedEnvironment, the same way (a dict of the row
plus `row`), best of 5, and prints microseconds per row for both. Not a test: nothing is
asserted about time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from reconciler.traits.template import ROW_VARIABLE, Template

TEMPLATES = [
    "Hi {{ first_name | title }}",
    "{{ first_name|title }} {{ plan ~ '-' ~ (score * 2) }}{% if score > 3 %}!{% endif %}",
    "{% for c in plan %}{{ c|upper }}{% endfor %}",
]


def best_of(render: Callable[[dict[str, Any]], str], rows: list[dict[str, Any]]) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for row in rows:
            render(row)
        best = min(best, time.perf_counter() - start)
    return best / len(rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=100_000)
    parser.add_argument("--template", action="append")
    args = parser.parse_args()
    rows = [{"first_name": f"name{i}", "plan": "gold", "score": i % 7} for i in range(args.rows)]
    plain_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    for text in args.template or TEMPLATES:
        bounded = Template(text)
        plain = plain_env.from_string(text)
        ours = best_of(bounded.render, rows)
        theirs = best_of(lambda row, t=plain: t.render({**row, ROW_VARIABLE: dict(row)}), rows)
        print(f"{ours:6.2f} us/row bounded, {theirs:6.2f} plain sandbox  {text}")


if __name__ == "__main__":
    main()
