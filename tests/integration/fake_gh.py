"""A recording stand-in for the `gh` CLI, run as `gh` by the workflow tests.

Only `gh api --method M ENDPOINT [--paginate] [--input -]` against the issue,
issue-comment, artifact, compare and workflow-runs endpoints, `user` and GraphQL's
`viewer`, which is all reconciler and the workflows use. State (comments per issue number,
issues, artifacts, workflow runs, the token's account) lives in the JSON file
$FAKE_GH_STATE; every call is appended to $FAKE_GH_LOG as one JSON line with its arguments
and request body. Like the real gh inside Actions, it refuses to work without GH_TOKEN.
Paginated lists come back as two pages ("[...][...]") whenever there is more than one
item, as `gh api --paginate` prints them.

The token is, by default, a workflow's GITHUB_TOKEN: an installation token, for which
GitHub refuses `GET /user` ("Resource not accessible by integration"), GraphQL's viewer is
`github-actions`, and what it writes is authored by `github-actions[bot]` (type Bot). State
`"token": {"kind": "user", "login": "octocat"}` makes it a person's token instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

SERVER = "https://github.test"


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["FAKE_GH_STATE"])
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else _empty()
    # gh reads and writes bytes, UTF-8, whatever the locale; non-ASCII text comes back from
    # GitHub as it is, not as \u escapes.
    body = sys.stdin.buffer.read().decode("utf-8") if "--input" in argv else None
    with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": argv, "body": body}) + "\n")
    if not os.environ.get("GH_TOKEN"):
        print(
            "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN "
            "environment variable.",
            file=sys.stderr,
        )
        return 4
    if argv[:1] != ["api"]:
        print(f"fake gh: unsupported command {argv!r}", file=sys.stderr)
        return 2
    method = argv[argv.index("--method") + 1] if "--method" in argv else "GET"
    endpoint = next(a for a in argv[1:] if not a.startswith("-") and a != method)
    payload = json.loads(body) if body else {}
    path, _, query = endpoint.partition("?")
    if m := re.fullmatch(r"repos/[^/]+/[^/]+/actions/workflows/([^/]+)/runs", path):
        status, answer = _workflow_runs(state, unquote(m[1]), parse_qs(query))
    else:
        status, answer = _route(state, method, path, payload)
    state_path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    if status >= 400:
        print(f"gh: {answer} (HTTP {status})", file=sys.stderr)
        return 1
    if "--paginate" in argv and isinstance(answer, list) and len(answer) > 1:
        half = len(answer) // 2
        _print(json.dumps(answer[:half], ensure_ascii=False))
        _print(json.dumps(answer[half:], ensure_ascii=False))
    elif status != 204:  # No Content: gh prints nothing
        _print(json.dumps(answer, ensure_ascii=False))
    return 0


def _print(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _empty() -> dict[str, Any]:
    return {"next_id": 1000, "comments": {}, "issues": []}


INSTALLATION_TOKEN = {"kind": "installation", "login": "github-actions[bot]"}


def _author(state: dict[str, Any]) -> dict[str, str]:
    """REST's `user` of what the token writes."""
    token = state.get("token", INSTALLATION_TOKEN)
    return {"login": token["login"], "type": "Bot" if token["kind"] == "installation" else "User"}


def _route(state: dict[str, Any], method: str, path: str, payload: dict) -> tuple[int, Any]:
    token = state.get("token", INSTALLATION_TOKEN)
    if path == "user" and method == "GET":
        if token["kind"] == "installation":
            return 403, "Resource not accessible by integration"
        return 200, _author(state)
    if path == "graphql" and method == "POST":
        if "viewer" not in payload.get("query", ""):
            return 400, "fake gh: only the viewer query is supported"
        # GraphQL names a bot without the [bot] suffix REST adds.
        return 200, {"data": {"viewer": {"login": token["login"].removesuffix("[bot]")}}}
    if re.fullmatch(r"repos/[^/]+/[^/]+/compare/[^.]+\.\.\..+", path) and method == "GET":
        # The run's commit against its branch: state "newer" lists the commits merged since
        # (each with the files it changed); none by default.
        newer = state.get("newer", [])
        files = sorted({name for commit in newer for name in commit["files"]})
        return 200, {
            "status": "ahead" if newer else "identical",
            "ahead_by": len(newer),
            "files": [{"filename": name, "status": "modified"} for name in files],
        }
    if m := re.fullmatch(r"repos/[^/]+/[^/]+/actions/artifacts/(\d+)", path):
        artifacts = state.setdefault("artifacts", {})
        if method == "DELETE" and m[1] in artifacts:
            # The workflow runner keeps an artifact's files in a directory: gone with it.
            shutil.rmtree(artifacts.pop(m[1])["path"], ignore_errors=True)
            return 204, ""
        return 404, "Not Found"
    if m := re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)/comments", path):
        repo, number = m[1], m[2]
        comments = state["comments"].setdefault(number, [])
        if method == "GET":
            return 200, comments
        if method == "POST":
            comment = {
                "id": _next_id(state),
                "body": payload["body"],
                "user": _author(state),
                "html_url": f"{SERVER}/{repo}/pull/{number}#issuecomment-{state['next_id']}",
            }
            comments.append(comment)
            return 201, comment
    if m := re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\d+)", path):
        for comments in state["comments"].values():
            for comment in comments:
                if comment["id"] == int(m[1]) and method == "PATCH":
                    comment["body"] = payload["body"]
                    return 200, comment
        return 404, "Not Found"
    if m := re.fullmatch(r"repos/([^/]+/[^/]+)/issues", path):
        if method == "GET":  # state=open is all reconciler asks for
            return 200, [i for i in state["issues"] if i["state"] == "open"]
        if method == "POST":
            number = _next_id(state)
            issue = {
                "number": number,
                "title": payload["title"],
                "body": payload["body"],
                "state": "open",
                "user": _author(state),
                "html_url": f"{SERVER}/{m[1]}/issues/{number}",
            }
            state["issues"].append(issue)
            return 201, issue
    if m := re.fullmatch(r"repos/[^/]+/[^/]+/issues/(\d+)", path):
        for issue in state["issues"]:
            if issue["number"] == int(m[1]) and method == "PATCH":
                issue.update(payload)
                return 200, issue
        return 404, "Not Found"
    return 404, f"fake gh: no route for {method} {path}"


# The workflow files of the repository the tests stand for: another name is GitHub's 404.
WORKFLOW_FILES = ("ci.yml", "plan.yml", "apply.yml", "drift.yml", "sync.yml")
# The times GitHub's search syntax reads: a date, with a time and an offset or Z if given.
GITHUB_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?)?")


def _workflow_runs(state: dict[str, Any], workflow: str, query: dict) -> tuple[int, Any]:
    """GET .../actions/workflows/FILE/runs: state "runs" holds {workflow, id, status,
    created_at, html_url}; `status=` and `created=>=TIME` filter them, as on GitHub."""
    if workflow not in WORKFLOW_FILES:
        return 404, "Not Found"
    runs = [r for r in state.get("runs", []) if r["workflow"] == workflow]
    if "status" in query:
        runs = [r for r in runs if r["status"] == query["status"][0]]
    if "created" in query:
        since = query["created"][0].removeprefix(">=")
        if not GITHUB_TIME.fullmatch(since):
            return 422, "Validation Failed"  # GitHub refuses a time its search cannot read
        runs = [r for r in runs if r["created_at"] >= since]
    runs.sort(key=lambda r: r["created_at"], reverse=True)
    shown = runs[: int(query.get("per_page", ["30"])[0])]
    return 200, {"total_count": len(runs), "workflow_runs": shown}


def _next_id(state: dict[str, Any]) -> int:
    state["next_id"] += 1
    return state["next_id"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
