"""Run a GitHub Actions workflow's jobs locally, the way a runner would, for tests.

    runner = WorkflowRunner(repo=template_dir, work=tmp_path / "runs", secrets={...},
                            github={...}, env={...}, tools=bin_dir,
                            environments={"iterable-production": {...secrets}})
    jobs = runner.run(load_workflow(".github/workflows/plan.yml"))
    jobs["plan"].result, jobs["plan"].steps["plan"].outputs, jobs["plan"].summary

Each job gets a fresh copy of the repository (what actions/checkout gives), `run:` steps
run with `bash --noprofile --norc -eo pipefail` (GitHub's `shell: bash`), and
GITHUB_STEP_SUMMARY, GITHUB_OUTPUT and GITHUB_ENV point at files per step, read back
as GitHub does. `${{ }}` expressions in `if:`, `env:`, `with:` and job outputs are
evaluated by a small interpreter of GitHub's expression language, including the rule
that an `if:` without a status function means `success() && (...)`. The few actions the
workflows use are emulated: checkout, setup-python (the running Python stands in), and
upload/download-artifact (a directory per artifact name, shared by the run's jobs; an
upload's `artifact-id` output numbers it, and `on_upload` is told of it). A job with
`environment:` sees that environment's secrets over the repository's, as on GitHub; the
environment is recorded in JobRun.environment.
Anything else fails loudly, so a new action cannot go untested by accident.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

STEP_TIMEOUT = 120


def load_workflow(path: Path) -> dict[str, Any]:
    # YAML 1.2 (ruamel's safe loader) keeps the key `on` a string; YAML 1.1 makes it True.
    return YAML(typ="safe").load(path.read_text())


# -- expressions --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[!<>().\[\],*])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot parse expression at {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match[kind]))
        position = match.end()
    return out


class _Parser:
    def __init__(self, text: str, context: dict[str, Any], functions: dict[str, Callable]):
        self.tokens = _tokens(text)
        self.i = 0
        self.context = context
        self.functions = functions

    def parse(self) -> Any:
        value = self._or()
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.i][1]!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.i]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, got {token[1]!r}")
        self.i += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            value = right if truthy(value) else value
        return value

    def _compare(self) -> Any:
        value = self._unary()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            same = loose_equal(value, self._unary())
            return same if op == "==" else not same
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text) if "." in text else int(text)
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            self._take()
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take(")")
            return self.functions[text](*args)
        value: Any = self.context.get(text)
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                key: Any = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            value = value.get(key) if isinstance(value, dict) else None
        return value


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", 0.0)


def loose_equal(a: Any, b: Any) -> bool:
    # GitHub compares strings case-insensitively and coerces mixed types to numbers.
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if type(a) is type(b):
        return a == b

    def number(x: Any) -> float:
        if x is None or x == "":
            return 0.0
        if isinstance(x, bool):
            return float(x)
        try:
            return float(x)
        except (TypeError, ValueError):
            return float("nan")

    return number(a) == number(b)


def evaluate(text: str, context: dict[str, Any], functions: dict[str, Callable]) -> Any:
    return _Parser(text, context, functions).parse()


def condition(expression: Any, context: dict[str, Any], functions: dict[str, Callable]) -> bool:
    """An `if:`; without a status function it means `success() && (expression)`."""
    if expression is None:
        expression = "success()"
    if isinstance(expression, bool):
        return expression and functions["success"]()
    text = str(expression).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not any(re.search(rf"\b{f}\s*\(", text) for f in STATUS_FUNCTIONS):
        text = f"success() && ({text})"
    return truthy(evaluate(text, context, functions))


def github_format(template: Any, *args: Any) -> str:
    """GitHub's format(): `{N}` is the Nth argument as a string, `{{` and `}}` are braces."""

    def one(match: re.Match[str]) -> str:
        if match[0] in ("{{", "}}"):
            return match[0][0]
        value = args[int(match[1])]
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return re.sub(r"\{\{|\}\}|\{(\d+)\}", one, str(template))


# Functions any expression may call, besides the status functions.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "contains": lambda a, b: str(b).casefold() in str(a).casefold(),
    "startsWith": lambda a, b: str(a).casefold().startswith(str(b).casefold()),
    "format": github_format,
}


def interpolate(value: Any, context: dict[str, Any], functions: dict[str, Callable]) -> str:
    def one(match: re.Match[str]) -> str:
        result = evaluate(match[1], context, functions)
        if result is None:
            return ""
        if isinstance(result, bool):
            return "true" if result else "false"
        return str(result)

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


# -- running ------------------------------------------------------------------------------


@dataclass
class StepRun:
    name: str
    outcome: str  # success | failure | skipped
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    env_updates: dict[str, str] = field(default_factory=dict)  # written to GITHUB_ENV


@dataclass
class JobRun:
    result: str  # success | failure | skipped
    steps: dict[str, StepRun] = field(default_factory=dict)  # by id, else by position
    outputs: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> `with:`
    environment: str | None = None

    @property
    def summary(self) -> str:
        return "".join(step.summary for step in self.steps.values())

    @property
    def logs(self) -> str:
        return "".join(step.stdout + step.stderr for step in self.steps.values())


class WorkflowRunner:
    def __init__(
        self,
        *,
        repo: Path,
        work: Path,
        tools: Path,
        github: dict[str, Any],
        secrets: dict[str, str],
        env: dict[str, str],
        environments: dict[str, dict[str, str]] | None = None,
        on_upload: Callable[[str, int, Path], None] | None = None,
    ):
        self.repo = repo
        self.work = work
        self.tools = tools
        self.github = github
        self.secrets = secrets
        self.env = env
        self.environments = environments or {}
        self.on_upload = on_upload
        self.artifact_ids = 0
        self.runs = 0

    def run(
        self,
        workflow: dict[str, Any],
        between_jobs: Callable[[str, JobRun], None] | None = None,
    ) -> dict[str, JobRun]:
        """Run every job in `needs` order; `between_jobs(job_id, run)` after each one."""
        self.runs += 1
        run_dir = self.work / f"run-{self.runs}"
        artifacts = run_dir / "artifacts"
        artifacts.mkdir(parents=True)
        results: dict[str, JobRun] = {}
        pending = dict(workflow["jobs"])
        while pending:
            job_id, job = next((k, v) for k, v in pending.items() if set(_needs(v)) <= set(results))
            del pending[job_id]
            results[job_id] = self._job(workflow, job_id, job, results, run_dir, artifacts)
            if between_jobs is not None:
                between_jobs(job_id, results[job_id])
        return results

    def _context(self, results: dict[str, JobRun], job: dict, steps: dict[str, StepRun]):
        return {
            "github": self.github,
            "secrets": {**self.secrets, **self.environments.get(_environment(job) or "", {})},
            "env": {},
            "needs": {
                n: {"result": results[n].result, "outputs": results[n].outputs} for n in _needs(job)
            },
            "steps": {
                k: {"outputs": s.outputs, "outcome": s.outcome, "conclusion": s.outcome}
                for k, s in steps.items()
            },
        }

    def _job(
        self,
        workflow: dict,
        job_id: str,
        job: dict,
        results: dict[str, JobRun],
        run_dir: Path,
        artifacts: Path,
    ) -> JobRun:
        needs_ok = all(results[n].result == "success" for n in _needs(job))
        job_functions = {
            "success": lambda: needs_ok,
            "failure": lambda: not needs_ok,
            "always": lambda: True,
            "cancelled": lambda: False,
            **FUNCTIONS,
        }
        run = JobRun("success", environment=_environment(job))
        if not condition(job.get("if"), self._context(results, job, {}), job_functions):
            run.result = "skipped"
            return run
        # Every job starts on a fresh machine, checked out at the same path (as on
        # GitHub-hosted runners: /home/runner/work/REPO/REPO), so only artifacts carry over.
        workspace = run_dir / "workspace"
        shutil.rmtree(workspace, ignore_errors=True)
        workspace.mkdir()
        failed = False
        step_functions = {
            "success": lambda: not failed,
            "failure": lambda: failed,
            "always": lambda: True,
            "cancelled": lambda: False,
            **FUNCTIONS,
        }
        base_env = {**self.env, **_str_map(workflow.get("env")), **_str_map(job.get("env"))}
        for index, step in enumerate(job["steps"]):
            key = step.get("id", f"#{index}")
            context = self._context(results, job, run.steps)
            name = step.get("name") or step.get("uses") or step.get("run", "")[:40]
            if not condition(step.get("if"), context, step_functions):
                run.steps[key] = StepRun(name, "skipped")
                continue
            env = {
                **base_env,
                **{
                    k: interpolate(v, context, step_functions)
                    for k, v in (step.get("env") or {}).items()
                },
            }
            if "uses" in step:
                with_ = {
                    k: interpolate(v, context, step_functions)
                    for k, v in (step.get("with") or {}).items()
                }
                result = self._action(step["uses"], with_, workspace, artifacts, run)
            else:
                result = self._script(step, env, workspace, run_dir / f"{job_id}-{index}")
            result.name = name
            run.steps[key] = result
            # continue-on-error: the step's outcome is failure, the job goes on as if not.
            if result.outcome == "failure" and not step.get("continue-on-error"):
                failed = True
            base_env.update(result.env_updates)
        run.result = "failure" if failed else "success"
        context = self._context(results, job, run.steps)
        run.outputs = {
            k: interpolate(v, context, step_functions)
            for k, v in (job.get("outputs") or {}).items()
        }
        return run

    def _script(self, step: dict, env: dict[str, str], workspace: Path, files: Path) -> StepRun:
        files.mkdir()
        summary, output, env_file = files / "summary.md", files / "output", files / "env"
        for f in (summary, output, env_file):
            f.touch()
        script = files / "script.sh"
        script.write_text(step["run"])
        full_env = {
            **env,
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_ENV": str(env_file),
            "GITHUB_WORKSPACE": str(workspace),
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace / step.get("working-directory", "."),
            env=full_env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        result = StepRun(
            name="",
            outcome="success" if done.returncode == 0 else "failure",
            exit_code=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            outputs=_read_key_values(output),
            summary=summary.read_text(),
            env_updates=_read_key_values(env_file),
        )
        return result

    def _action(
        self, uses: str, with_: dict[str, str], workspace: Path, artifacts: Path, run: JobRun
    ) -> StepRun:
        action = uses.split("@")[0]
        if action == "actions/checkout":
            shutil.copytree(self.repo, workspace, dirs_exist_ok=True)
            return StepRun("", "success")
        if action == "actions/setup-python":
            return StepRun("", "success")  # the tests' own Python stands in
        if action == "actions/upload-artifact":
            source = workspace / with_["path"]
            if not source.exists():
                missing = with_.get("if-no-files-found", "warn")
                return StepRun("", "failure" if missing == "error" else "success")
            target = artifacts / with_["name"]
            if target.exists() and with_.get("overwrite") != "true":
                return StepRun("", "failure", stderr="artifact exists; overwrite is false")
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name)
            run.uploads[with_["name"]] = with_
            self.artifact_ids += 1
            if self.on_upload is not None:
                self.on_upload(with_["name"], self.artifact_ids, target)
            return StepRun("", "success", outputs={"artifact-id": str(self.artifact_ids)})
        if action == "actions/download-artifact":
            source = artifacts / with_["name"]
            if not source.exists():
                return StepRun("", "failure", stderr=f"artifact {with_['name']} not found")
            shutil.copytree(source, workspace / with_.get("path", "."), dirs_exist_ok=True)
            return StepRun("", "success")
        raise AssertionError(f"the test runner does not know the action {uses}")


def _environment(job: dict) -> str | None:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else environment


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _str_map(mapping: dict | None) -> dict[str, str]:
    return {k: str(v) for k, v in (mapping or {}).items()}


def _read_key_values(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV: `key=value` lines and `key<<DELIM` ... `DELIM` blocks."""
    values: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            values[key] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values
