"""A recording stand-in for the `gh` CLI, run as `gh` by the workflow tests.

Only `gh api --method M ENDPOINT [--paginate] [--input -]` against the issue and
issue-comment endpoints, which is all reconciler uses. State (comments per issue number,
issues) lives in the JSON file $FAKE_GH_STATE; every call is appended to $FAKE_GH_LOG as
one JSON line with its arguments and request body. Like the real gh inside Actions, it
refuses to work without GH_TOKEN. Paginated lists come back as two pages ("[...][...]")
whenever there is more than one item, as `gh api --paginate` prints them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

SERVER = "https://github.test"


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["FAKE_GH_STATE"])
    state = json.loads(state_path.read_text()) if state_path.exists() else _empty()
    body = sys.stdin.read() if "--input" in argv else None
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
    status, answer = _route(state, method, endpoint.split("?")[0], payload)
    state_path.write_text(json.dumps(state, indent=2))
    if status >= 400:
        print(f"gh: {answer} (HTTP {status})", file=sys.stderr)
        return 1
    if "--paginate" in argv and isinstance(answer, list) and len(answer) > 1:
        half = len(answer) // 2
        sys.stdout.write(json.dumps(answer[:half]) + json.dumps(answer[half:]))
    else:
        sys.stdout.write(json.dumps(answer))
    return 0


def _empty() -> dict[str, Any]:
    return {"next_id": 1000, "comments": {}, "issues": []}


def _route(state: dict[str, Any], method: str, path: str, payload: dict) -> tuple[int, Any]:
    if m := re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)/comments", path):
        repo, number = m[1], m[2]
        comments = state["comments"].setdefault(number, [])
        if method == "GET":
            return 200, comments
        if method == "POST":
            comment = {
                "id": _next_id(state),
                "body": payload["body"],
                "user": {"login": "github-actions[bot]"},
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


def _next_id(state: dict[str, Any]) -> int:
    state["next_id"] += 1
    return state["next_id"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
