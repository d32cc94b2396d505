"""Templates in trait mappings: jinja2 in a sandbox, strict about undefined variables.

A manifest comes from a pull request, so a template is untrusted code: the sandbox keeps it
from reaching Python internals (attributes such as `__class__`, unsafe callables), and
StrictUndefined makes a misspelt column an error instead of a silently empty field.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

# The name under which a template sees the whole row, for columns whose names are not
# valid variable names (`{{ row["first name"] }}`).
ROW_VARIABLE = "row"


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the output is a field value, not HTML
        keep_trailing_newline=False,
    )


class TemplateRenderError(Exception):
    """A template failed for one row; `reason` is written for people."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def template_syntax_error(text: str) -> str | None:
    """A message for a template that does not compile, or None when it does. Compiled,
    not only parsed: an unknown filter or test is found by the compiler."""
    try:
        environment().compile(text)
    except jinja2.TemplateSyntaxError as error:
        line = f" (line {error.lineno} of the template)" if "\n" in text.strip() else ""
        return f"template syntax error: {error.message}{line}"
    return None


def template_variables(text: str) -> set[str]:
    """The variables a template reads from its context (columns, or `row`)."""
    return set(meta.find_undeclared_variables(environment().parse(text)))


class Template:
    """One compiled template; `render(row)` gives the field's text for that row."""

    def __init__(self, text: str):
        self.text = text
        self._template = environment().from_string(text)

    def render(self, row: Mapping[str, Any]) -> str:
        context = {**row, ROW_VARIABLE: dict(row)}
        try:
            return self._template.render(context)
        except jinja2.UndefinedError as error:
            raise TemplateRenderError(f"undefined variable: {error.message}") from None
        except jinja2.exceptions.SecurityError as error:
            raise TemplateRenderError(f"refused by the template sandbox: {error}") from None
        except jinja2.TemplateError as error:
            raise TemplateRenderError(f"template error: {error}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as error:
            # A filter or an operator met a value it cannot handle (`{{ a / b }}` with b 0).
            raise TemplateRenderError(f"{type(error).__name__}: {error}") from None
