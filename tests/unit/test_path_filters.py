"""GitHub's `paths:` and `paths-ignore:` filter patterns (reconciler.github.path_filters),
against the examples of GitHub's filter pattern cheat sheet and its ordering rule: a
leading `!` excludes what the patterns before it included, and the last match decides."""

from __future__ import annotations

import pytest

from reconciler.github.path_filters import PathFilter, escape


@pytest.mark.parametrize(
    ("pattern", "passed", "left_out"),
    [
        ("**", ["all/the/files.md", ".github/x.yml"], []),
        ("*.js", ["app.js", "index.js"], ["js/index.js"]),
        ("**.js", ["index.js", "js/index.js", "src/js/app.js"], ["index.jsx"]),
        ("docs/*", ["docs/README.md", "docs/file.txt"], ["docs/mona/octocat.txt"]),
        ("docs/**", ["docs/README.md", "docs/mona/octocat.txt"], ["docsy/x", "x/docs/y"]),
        ("docs/**/*.md", ["docs/README.md", "docs/mona/hello-world.md", "docs/a/b/c.md"], []),
        ("**/docs/**", ["docs/hello.md", "dir/docs/my-file.txt", "space/docs/plan/x.md"], []),
        ("**/README.md", ["README.md", "js/README.md"], ["README.mdx"]),
        ("**/*src/**", ["a/src/app.js", "my-src/code/js/app.js"], ["src.js"]),
        ("**/*-post.md", ["my-post.md", "path/their-post.md"], ["post.md"]),
        ("**/migrate-*.sql", ["migrate-10909.sql", "db/migrate-v1.0.sql"], ["migrate.sql"]),
        # `?` and `+`: zero or one, one or more, of the character before them.
        ("data/members?.csv", ["data/member.csv", "data/members.csv"], ["data/membersx.csv"]),
        ("data/a+.csv", ["data/a.csv", "data/aaa.csv"], ["data/.csv"]),
        ("[CB]at.csv", ["Cat.csv", "Bat.csv"], ["Dat.csv"]),
        ("[1-2]00.csv", ["100.csv", "200.csv"], ["300.csv"]),
        # `\` takes the next character as it is.
        ("data/a\\*b.csv", ["data/a*b.csv"], ["data/axb.csv"]),
    ],
)
def test_each_pattern_passes_what_github_s_cheat_sheet_says(pattern, passed, left_out):
    only = PathFilter((pattern,))
    assert [name for name in passed if not only.passes(name)] == []
    assert [name for name in left_out if only.passes(name)] == []


def test_order_matters_and_the_last_matching_pattern_decides():
    readme_out = PathFilter(("*.md", "!README.md"))
    readme_back = PathFilter(("*.md", "!README.md", "README*"))
    assert readme_out.passes("hello.md") and not readme_out.passes("README.md")
    assert readme_back.passes("README.md") and readme_back.passes("README.doc")
    # A negative pattern alone includes nothing (GitHub wants a positive one with it).
    assert not PathFilter(("!data/**",)).passes("data/members.csv")
    assert not PathFilter(()).passes("data/members.csv")


def test_paths_ignore_leaves_out_what_any_of_its_patterns_matches():
    ignore = PathFilter(("data/**", "!data/members.csv"), ignore=True)
    assert ignore.passes("manifests/vip.yaml")
    # Whether `!` re-includes in paths-ignore GitHub does not say: counted as ignored.
    assert not ignore.passes("data/members.csv")


def test_a_file_name_escaped_matches_itself_alone():
    for name in ("data/a*b[1].csv", "!odd+name?.csv", "back\\slash.csv"):
        assert PathFilter((escape(name),)).passes(name)
    assert not PathFilter((escape("data/a*.csv"),)).passes("data/ab.csv")
