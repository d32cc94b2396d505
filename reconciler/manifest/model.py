"""The manifest schema: one pydantic model per document kind and per spec block.

Field names are the YAML's own camelCase, so an error path, the JSON Schema and the
manifest all use the same words. The JSON Schema is generated from these models, so a
constraint an editor should know about is declared here, not only checked in code.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.fields import ComputedFieldInfo, FieldInfo
from pydantic_core import PydanticCustomError

from reconciler.errors import variable_name
from reconciler.layout import LAYOUT_BREAKING_CLASS, breaks_layout
from reconciler.plan.policy import DEFAULT_MAX_FIELD_CLEAR_PERCENT, DEFAULT_MAX_REMOVAL_PERCENT

API_VERSION = "reconciler/v1"
_API_VERSION_HELP = "The manifest format this document is written in."
_KIND_HELP = "What this document declares: Destination, Audience or TraitMapping."
KINDS = ("Destination", "Audience", "TraitMapping")
# Kinds that exist in the design but not in this release; refused with a kinder message
# than "unknown kind".
RESERVED_KINDS: tuple[str, ...] = ()

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# An Iterable API key (32 hex digits), or a long run of letters with six digits or more
# among them and no '_': no one names a variable so (`iterableKeyProduction2024` is a
# name), and `env: <the key>` is a key pasted in git.
_LOOKS_LIKE_A_KEY = re.compile(
    r"[0-9a-fA-F]{32}|(?=(?:[A-Za-z]*[0-9]){6})(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{24,}"
)
# A top-level Iterable field: a dot would address a nested path, and surrounding spaces are
# invisible in every UI that shows the field.
FIELD_NAME_PATTERN = r"^[^.\s](?:[^.]{0,198}[^.\s])?$"

# Used by the error formatter: a regex means nothing to someone editing YAML.
PATTERN_DESCRIPTIONS = {
    NAME_PATTERN: "1-200 ASCII letters, digits, '-', '_' or '.'",
    ENV_VAR_PATTERN: "an environment variable name (ASCII letters, digits and '_', not starting "
    "with a digit)",
    # A dot is how Iterable names a field inside an object (address.city): say how to write one.
    FIELD_NAME_PATTERN: "a field name: 1-200 characters, no spaces at either end, no '.' (a "
    "field inside an object is written as the object: a field of type: object, with the "
    "mapping's mergeNestedObjects: true to keep the object's other keys)",
}

LITERAL_API_KEY_MESSAGE = (
    "must be {env: VARIABLE} or {file: PATH}: a literal key is refused because keys never "
    "live in git"
)

# The `at` context entry names the field a model-level check is about, so the error can
# point at that field's line instead of at the whole block.
AT = "at"
# The line within a template an error is on: a template written as a `|` block scalar has
# that line in the file too, and the error is located there.
TEMPLATE_LINE = "template_line"


def _yaml_field_title(name: str, info: FieldInfo | ComputedFieldInfo) -> str:
    # Editors show the title on hover; pydantic's default turns projectType into
    # "Projecttype", a word that appears nowhere in a manifest. The key as written: a
    # field's alias (`from`), not its Python name (`from_`).
    alias = getattr(info, "alias", None)
    return alias if isinstance(alias, str) else name


class _StrictModel(BaseModel):
    # Strict: YAML produces numbers and booleans where a user meant text (or text where
    # they meant a boolean); coercing silently would apply something nobody wrote. (An
    # unquoted date where text is expected is the loader's to give as the text written:
    # manifest/yaml_readings.py dates_as_written.)
    # Inputs are hidden from str(ValidationError) because a mistyped apiKey is a secret.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        hide_input_in_errors=True,
        field_title_generator=_yaml_field_title,
    )


NonEmptyStr = Annotated[str, Field(min_length=1)]


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 10.0 as the integer 10, so an editor checking a manifest against
    # the published schema passes `maxRemovals: 10.0` (and `1e3`): refusing it here would
    # fail in CI a file the editor passed. A fraction is still refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# After a field's bounds in its Annotated, so that they stay the schema's own keywords.
WHOLE_NUMBER = BeforeValidator(_whole_number)


def _file_path(value: str) -> str:
    # The operating system cannot take such a name; open() would raise ValueError.
    if "\x00" in value:
        raise PydanticCustomError("nul_in_path", "a file path cannot contain a NUL byte")
    # Messages quote the path: a newline in it would print a line of the manifest's
    # choosing into CI logs (a forged `OK:`, or a `::` workflow command).
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise PydanticCustomError(
            "control_in_path",
            "a file path cannot contain control or formatting characters (a newline, a tab, "
            "a right-to-left override)",
        )
    # No common file system takes a longer name; the first look at such a path (exists())
    # raised "File name too long" as an internal error with no file or line.
    if any(
        len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in value.split("/")
    ):
        raise PydanticCustomError(
            "name_too_long",
            "a file path cannot hold a name longer than {limit} bytes (between two /), the "
            "most a file system allows",
            {"limit": MAX_NAME_BYTES},
        )
    return value


# The longest file or directory name (NAME_MAX) of Linux's and macOS's file systems.
MAX_NAME_BYTES = 255

FilePath = Annotated[str, Field(min_length=1), AfterValidator(_file_path)]


def _one_line(value: str, what: str) -> str:
    """A name plans, reports, alerts and CI logs print: a newline in it would print a line
    of the manifest's choosing there (a forged `OK:`, a `::` workflow command in a job
    log) and end a table row or code block of the pull-request comment."""
    if any(breaks_layout(c) for c in value):
        raise PydanticCustomError(
            f"control_in_{what.replace(' ', '_')}",
            "a {what} cannot contain control characters (a newline, a tab) or right-to-left "
            "overrides",
            {"what": what},
        )
    return value


# What `_one_line` refuses, for an editor, as a schema a name must not match: any one
# such character (`^[^...]*$` would pass a name ending in a newline in Python's dialect,
# where `$` matches before one).
NOT_ONE_LINE: dict[str, JsonValue] = {"pattern": f"[{LAYOUT_BREAKING_CLASS}]"}


def _list_name(value: str) -> str:
    if not value.strip():
        # Iterable refuses to create such a list (POST /api/lists: 400): the plan would
        # say it creates it and every apply fail there.
        raise PydanticCustomError(
            "blank_list_name",
            "a list name cannot be blank: Iterable refuses a list named by spaces alone; "
            "give it a name, or remove listName to name the list after the audience",
        )
    return _one_line(value, "list name")


class Metadata(_StrictModel):
    """Identity of a document: its name, and free-form labels and annotations."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="Unique within its kind.")]
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form text for people and tools; reconciler neither reads nor sends it.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form text for people and tools; reconciler neither reads nor sends it.",
    )


class ApiKeyRef(_StrictModel):
    """Where the API key is found at run time: {env: VARIABLE} or {file: PATH}; the key
    itself never appears in a manifest. Required for us and eu, and whenever baseUrl is
    set; optional for the sandbox alone."""

    env: (
        Annotated[
            str,
            Field(
                pattern=ENV_VAR_PATTERN,
                # So an editor flags a pasted key as it is typed, before it is committed.
                json_schema_extra={"not": {"pattern": f"^(?:{_LOOKS_LIKE_A_KEY.pattern})$"}},
            ),
        ]
        | None
    ) = Field(default=None, description="Name of the environment variable that holds the key.")
    file: FilePath | None = Field(
        default=None,
        description="File that holds the key, relative to this manifest's directory: a "
        "regular file of at most 4096 bytes.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["env"], "properties": {"env": {"type": "string"}}},
                {"required": ["file"], "properties": {"file": {"type": "string"}}},
            ]
        }
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_literal_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping | ApiKeyRef):
            return data
        if isinstance(data, str | int | float) and not isinstance(data, bool):
            raise PydanticCustomError("literal_api_key", LITERAL_API_KEY_MESSAGE)
        raise PydanticCustomError("api_key_type", "must be {env: VARIABLE} or {file: PATH}")

    @field_validator("env", mode="before")
    @classmethod
    def _refuse_a_key_as_the_name(cls, value: Any) -> Any:
        # Iterable's keys are 32 hex digits, often a valid variable name too: pasted under
        # env, every "ITERABLE_API_KEY is not set" message would print the key itself.
        if isinstance(value, str) and _LOOKS_LIKE_A_KEY.fullmatch(value):
            raise PydanticCustomError(
                "literal_api_key",
                "this is the key itself, not the name of the variable holding it: give "
                "{env: VARIABLE} (such as ITERABLE_API_KEY) and rotate the key, since it is "
                "in git now",
            )
        return value

    @field_validator("file")
    @classmethod
    def _refuse_an_unknown_home(cls, value: str | None) -> str | None:
        # `~ci/key` on a machine without user ci (a path from a laptop, a typo of `~/`):
        # pathlib's expanduser raises for it, an internal error wherever the path is used.
        if value is None or not value.startswith("~") or os.path.expanduser(value) != value:
            return value
        user = re.split(r"[/\\]", value[1:], maxsplit=1)[0]
        raise PydanticCustomError(
            "api_key_file_home",
            "{path} starts with ~, but this machine has {who}: write the path in full, or "
            "use {env: VARIABLE}",
            {
                "path": value,
                "who": f"no user {user!r}" if user else "no home directory (set HOME)",
            },
        )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ApiKeyRef:
        if (self.env is None) == (self.file is None):
            raise PydanticCustomError("exactly_one", "give exactly one of env, file")
        return self


# What an editor is told of a baseUrl, in the words _http_url checks: http or https in any
# case (urlsplit lowercases the scheme), a host without a user name or password, a path
# but no query or fragment, and no space or control character.
HTTP_URL_PATTERN = (
    "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\u0000-\\u0020\\u007f]+(/[^?#\\u0000-\\u0020\\u007f]*)?$"
)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    # urlsplit drops a newline or tab anywhere and spaces before the URL, so it alone
    # would pass a URL that no request can be sent to.
    blank = any(c <= " " or c == "\x7f" for c in value)
    if parts.scheme not in ("http", "https") or not parts.netloc or blank:
        raise PydanticCustomError(
            "http_url", "expected an http(s) URL such as http://127.0.0.1:8080"
        )
    # Never quoted: what is refused here is a credential pasted into the URL.
    if "@" in parts.netloc:
        raise PydanticCustomError(
            "http_url_credentials",
            "a user name or password before baseUrl's host is refused because credentials "
            "never live in git; the API key goes in apiKey ({env: VARIABLE} or {file: "
            "PATH}), sent in a header only to hosts it may go to",
        )
    if "?" in value or "#" in value:
        raise PydanticCustomError(
            "http_url_query",
            "baseUrl takes no query or fragment (?, #): each request's path is added to "
            "it, and a key in it would live in git; give the host and a path only, such as "
            "https://iterable-proxy.example/api-root, and the key in apiKey",
        )
    return value


HttpUrl = Annotated[
    str,
    AfterValidator(_http_url),
    Field(json_schema_extra={"format": "uri", "pattern": HTTP_URL_PATTERN}),
]


class RemovalPolicySpec(_StrictModel):
    """Limits on what a plan may change in one list; an audience's policy overrides its
    destination's, key by key."""

    maxRemovalPercent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="Block a plan that removes more than this share of a list's current "
        "members (compared with '>'; default: the destination's, else "
        f"{DEFAULT_MAX_REMOVAL_PERCENT:g}).",
    )
    maxRemovals: Annotated[int, Field(ge=0), WHOLE_NUMBER] | None = Field(
        default=None, description="Block a plan that removes more members than this from a list."
    )
    activeCampaignAdds: Literal["block", "warn"] | None = Field(
        default=None,
        description="Adding members to a list that an active (running, scheduled) campaign "
        "sends to: 'block' refuses the plan unless --allow-unsafe, 'warn' (default) "
        "shows it.",
    )
    # Additions are limited too: a source that suddenly doubles (a join gone wrong, another
    # table's export) subscribes people who never asked to be on the list.
    maxAdditionPercent: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="Block a plan that adds more than this share of a list's current members "
        "(compared with '>'; not judged for a new or empty list). No limit by default.",
    )
    maxAdditions: Annotated[int, Field(ge=0), WHOLE_NUMBER] | None = Field(
        default=None,
        description="Block a plan that adds more members than this to a list. No limit by default.",
    )
    # Fields too: Iterable keeps no earlier value, so a source column that arrived empty
    # would clear a mapped field on every member in one apply.
    maxFieldClearPercent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="Block a plan that clears (sets to null or empty) a mapped field holding "
        "a value on more than this share of the list's members whose value it compared "
        "(compared with '>'; a field mapped by several audiences takes the smallest; "
        f"default: the destination's, else {DEFAULT_MAX_FIELD_CLEAR_PERCENT:g}).",
    )
    # And changed, by choice: daily fields change on everyone, but a mapping pointed at the
    # wrong column, or a source whose columns shifted, rewrites a field on every member.
    maxFieldChangePercent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="Block a plan that replaces a mapped field's value with another on more "
        "than this share of the list's members whose value it compared (compared with '>'; "
        "a clear or a value set where there was none is no change; a field mapped by "
        "several audiences takes the smallest set; default: the destination's, else no "
        "limit).",
    )


class PolicySpec(RemovalPolicySpec):
    """Safety limits a plan must stay within, or apply refuses it (unless overridden by flag)."""

    allowListDeletion: bool = Field(
        default=False, description="Allow prune to delete lists (default false)."
    )


class DestinationSpec(_StrictModel):
    """One Iterable project: where it is, how it identifies users, and how to log in."""

    region: Literal["us", "eu", "sandbox"] = Field(
        description="Iterable data center; sandbox is the built-in emulator."
    )
    projectType: Literal["hybrid", "userId", "email"] = Field(
        description="How the project identifies users."
    )
    apiKey: ApiKeyRef | None = Field(
        default=None,
        description="Required for us and eu, and whenever baseUrl is set; optional for the "
        "sandbox alone.",
    )
    baseUrl: HttpUrl | None = Field(
        default=None,
        description="Override the API address (a proxy or the emulator). The API key is "
        "sent only to the region's host, to this computer (127.0.0.1, ::1, localhost), or "
        "to an origin listed in the RECONCILER_TRUSTED_BASE_URLS environment variable.",
    )
    policy: PolicySpec = Field(default_factory=PolicySpec)
    prune: bool = Field(
        default=False,
        description="Delete lists that reconciler created and no manifest declares any more "
        "(a plan that does is blocked unless policy.allowListDeletion or "
        "--allow-list-deletion).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {
                        "required": ["region"],
                        "properties": {"region": {"enum": ["us", "eu"]}},
                    },
                    "then": {
                        "required": ["apiKey"],
                        "properties": {"apiKey": {"type": "object"}},
                    },
                },
                {
                    "if": {"required": ["baseUrl"], "properties": {"baseUrl": {"type": "string"}}},
                    "then": {
                        "required": ["apiKey"],
                        "properties": {"apiKey": {"type": "object"}},
                    },
                },
                {
                    "if": {"required": ["region"], "properties": {"region": {"const": "eu"}}},
                    "then": {"properties": {"projectType": {"not": {"const": "email"}}}},
                },
            ]
        }
    )

    @model_validator(mode="after")
    def _check_region(self) -> DestinationSpec:
        if self.region in ("us", "eu") and self.apiKey is None:
            raise PydanticCustomError(
                "api_key_required",
                "required for region {region}: give {env: VARIABLE} or {file: PATH}",
                {"region": self.region, AT: "apiKey"},
            )
        if self.baseUrl is not None and self.apiKey is None:
            # Any baseUrl is a server that answers only with a key (`reconciler emulator
            # serve` too): plan would stop at it, long after validate said OK.
            raise PydanticCustomError(
                "api_key_required",
                "required with baseUrl: give {env: VARIABLE} or {file: PATH}",
                {AT: "apiKey"},
            )
        if self.region == "eu" and self.projectType == "email":
            raise PydanticCustomError(
                "eu_email_project",
                "Iterable has no email-based projects in the EU data center; "
                "use hybrid or userId with region eu",
                {AT: "projectType"},
            )
        return self


class InlineMember(BaseModel):
    """A member written in the manifest; keys other than email and userId are traits."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        frozen=True,
        hide_input_in_errors=True,
        field_title_generator=_yaml_field_title,
        json_schema_extra={
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
                {"required": ["userId"], "properties": {"userId": {"type": "string"}}},
            ]
        },
    )

    email: str | None = Field(default=None, description="The member's email.")
    userId: str | None = Field(default=None, description="The member's userId.")

    @model_validator(mode="after")
    def _has_identity(self) -> InlineMember:
        if self.email is None and self.userId is None:
            raise PydanticCustomError("identity_missing", "give email, userId or both")
        return self

    @property
    def traits(self) -> dict[str, Any]:
        """The member's other keys, kept for trait mappings."""
        return dict(self.model_extra or {})

    @classmethod
    def from_entry(cls, entry: str | InlineMember) -> InlineMember:
        """Normalise an inline entry: a bare string is an email if it contains '@'."""
        if isinstance(entry, InlineMember):
            return entry
        if "@" in entry:
            return cls(email=entry)
        return cls(userId=entry)


def _inline_entry_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "identifier"
    if isinstance(value, Mapping | InlineMember):
        return "member"
    return None


InlineEntry = Annotated[
    Annotated[str, Tag("identifier")] | Annotated[InlineMember, Tag("member")],
    Discriminator(
        _inline_entry_kind,
        custom_error_type="inline_entry_type",
        custom_error_message="expected an email or userId string, or a mapping with "
        "email and/or userId",
    ),
]


# Where a database URL may hold a password: the userinfo of `dialect[+driver]://user:pw@`.
# Mirrors SQLAlchemy's URL grammar closely enough to find a literal password.
_URL_PASSWORD = re.compile(r"^[\w+]+://[^:/@]*:(?P<password>[^@]*)@")
_URL_SCHEME = re.compile(r"^[A-Za-z][\w+.-]*://")
# SQLAlchemy's split of a URL's user name and password from the rest (sqlalchemy.engine.url).
_URL_USERINFO = re.compile(
    r"^[\w+]+://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?(?P<rest>.*)$", re.DOTALL
)
ENV_REFERENCE = re.compile(r"\$\{(?P<name>[^}]*)\}")
_ENV_NAME = re.compile(ENV_VAR_PATTERN)
# Variables a database URL may never name: its value goes to the host the manifest names,
# so these would hand out Iterable's key or CI's credentials (the loader adds every
# variable a destination's apiKey names).
FORBIDDEN_URL_VARIABLES = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "RECONCILER_ALERT_WEBHOOK_URL",  # a credential too: anyone holding it can post
    }
)
FORBIDDEN_URL_VARIABLE_PREFIXES = ("ITERABLE_", "ACTIONS_")


def forbidden_url_variable(name: str) -> bool:
    # In any case: Windows finds GITHUB_TOKEN for ${github_token} (its names have no case).
    name = name.upper()
    return name in FORBIDDEN_URL_VARIABLES or name.startswith(FORBIDDEN_URL_VARIABLE_PREFIXES)


def _database_url(value: str) -> str:
    # Messages never quote the URL: it may carry a password someone pasted by mistake.
    for match in ENV_REFERENCE.finditer(value):
        if not _ENV_NAME.match(match["name"]):
            raise PydanticCustomError(
                "env_reference",
                "${...} must name an environment variable (letters, digits and '_', not "
                "starting with a digit)",
            )
        if forbidden_url_variable(match["name"]):
            raise PydanticCustomError(
                "forbidden_variable",
                # pydantic replaces "{name}" as it stands: "{{" is not an escape there.
                "${{name}} is refused: a database URL sends its values to the host it "
                "names, and this variable holds an API key or CI credential",
                {"name": variable_name(match["name"])},
            )
    if not _URL_SCHEME.match(value):
        raise PydanticCustomError(
            "database_url",
            "expected a SQLAlchemy URL such as postgresql://app:${PGPASSWORD}@host/db "
            "(${VARIABLE} may stand for the password or user name only)",
        )
    parts = _URL_USERINFO.match(value)
    if parts is None or ENV_REFERENCE.search(parts["rest"]):
        raise PydanticCustomError(
            "url_variable_place",
            "${VARIABLE} may stand only for the user name or password of a database URL, "
            "as in postgresql://app:${PGPASSWORD}@host/db; in the driver, host, port, "
            "database or query it would send its value wherever the manifest points",
        )
    password = _URL_PASSWORD.match(value)
    if password and password["password"] and not ENV_REFERENCE.search(password["password"]):
        raise PydanticCustomError(
            "literal_password",
            "a literal password is refused because passwords never live in git; write "
            "${VARIABLE} in its place, e.g. postgresql://app:${PGPASSWORD}@host/db",
        )
    # libpq (and other drivers) take the password from the query too: `?password=hunter2`
    # connected, a password committed to git though the userinfo's is refused.
    named = _query_password(parts["rest"])
    if named is not None:
        raise PydanticCustomError(
            "literal_password",
            "a literal password in the query ({name}=) is refused because passwords never live in "
            "git; write ${VARIABLE} in the URL's password place instead, e.g. "
            "postgresql://app:${PGPASSWORD}@host/db",
            {"name": named},
        )
    return value


def _query_password(rest: str) -> str | None:
    """The name of a query parameter of a database URL (past its userinfo) that gives a
    password with a value (password=, sslpassword=, MySQL's passwd=, ODBC's pwd=), in
    lower case and shown only when it is a plain word (it is the manifest's text); None
    when there is none."""
    _, mark, query = rest.partition("?")
    if not mark:
        return None
    for name, given in parse_qsl(query, keep_blank_values=True):
        key = name.strip().lower()
        if given and (key.endswith("password") or key in _QUERY_PASSWORD_NAMES):
            return key if re.fullmatch(r"[a-z_]{1,40}", key) else "password"
    return None


_QUERY_PASSWORD_NAMES = frozenset({"passwd", "pwd"})


DatabaseUrlTemplate = Annotated[str, AfterValidator(_database_url), Field(min_length=1)]

_SOURCES = ("inline", "csv", "parquet", "sql")


def _given(key: str, json_type: str) -> dict[str, Any]:
    """A JSON Schema condition: `key` is there and holds a `json_type`, not null."""
    return {"required": [key], "properties": {key: {"type": json_type}}}


class MembersSpec(_StrictModel):
    """Where an audience's members come from: inline, a CSV or Parquet file, or a SQL query."""

    inline: list[InlineEntry] | None = Field(
        default=None,
        description="Members written here: strings (email if it contains '@', else userId) "
        "or mappings with email and/or userId plus traits.",
    )
    csv: FilePath | None = Field(
        default=None, description="CSV file, relative to this manifest's directory."
    )
    parquet: FilePath | None = Field(
        default=None, description="Parquet file, relative to this manifest's directory."
    )
    sql: NonEmptyStr | None = Field(
        default=None,
        description="A query whose rows are the members; runs in `database` (DuckDB: one "
        "SELECT statement, reading only the repository's files) or at `url` (SQLAlchemy).",
    )
    database: FilePath | None = Field(
        default=None,
        description="DuckDB database file for `sql`, relative to this manifest's directory, "
        "or :memory:. Relative file paths in the query start at this manifest's directory.",
    )
    url: DatabaseUrlTemplate | None = Field(
        default=None,
        description="SQLAlchemy URL of the database `sql` runs in; ${VARIABLE} in its user "
        "name or password is replaced from the environment at run time (passwords never "
        "live in manifests), and refused anywhere else.",
    )
    email: NonEmptyStr = Field(default="email", description="Column holding the email.")
    userId: NonEmptyStr = Field(default="userId", description="Column holding the userId.")

    model_config = ConfigDict(
        json_schema_extra={
            # A key written as null is not given, as the model reads it: each condition
            # tests that a key holds a value, not only that it is there.
            "oneOf": [
                _given("inline", "array"),
                _given("csv", "string"),
                _given("parquet", "string"),
                _given("sql", "string"),
            ],
            "allOf": [
                # Column names beside inline members are a misplaced member (a condition
                # of its own: inside the oneOf it would let inline beside csv through).
                {
                    "if": _given("inline", "array"),
                    "then": {"not": {"anyOf": [{"required": ["email"]}, {"required": ["userId"]}]}},
                },
                {"if": _given("database", "string"), "then": _given("sql", "string")},
                {"if": _given("url", "string"), "then": _given("sql", "string")},
                {
                    "if": _given("sql", "string"),
                    "then": {"oneOf": [_given("database", "string"), _given("url", "string")]},
                },
            ],
        }
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> MembersSpec:
        given = [name for name in _SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "exactly_one", "give exactly one of {sources}", {"sources": ", ".join(_SOURCES)}
            )
        if self.sql is not None and self.database is None and self.url is None:
            # Said where it goes: a `database:` one indent out (under spec) is reported as
            # an unknown key there, which alone does not tell where it belongs.
            raise PydanticCustomError(
                "sql_database",
                "needs where the query runs: add `database:` beside `sql:` under "
                "spec.members, a DuckDB file or ':memory:' (a query that only reads files, "
                "read_csv('data/x.csv')), or `url:` there (SQLAlchemy)",
                {AT: "sql"},
            )
        if self.sql is not None and self.database is not None and self.url is not None:
            raise PydanticCustomError(
                "sql_database",
                "needs exactly one of database (DuckDB), url (SQLAlchemy), not both",
                {AT: "sql"},
            )
        if self.sql is None:
            for option in ("database", "url"):
                if getattr(self, option) is not None:
                    raise PydanticCustomError(
                        "option_without_sql", "applies only to sql members", {AT: option}
                    )
        if self.inline is not None:
            # Column names with inline members are almost always a misplaced member.
            for column in ("email", "userId"):
                if column in self.model_fields_set:
                    raise PydanticCustomError(
                        "column_without_csv",
                        "column names apply only to csv, parquet and sql members",
                        {AT: column},
                    )
        return self

    def inline_members(self) -> list[InlineMember]:
        """The inline entries with bare strings turned into members (empty for other sources)."""
        return [InlineMember.from_entry(entry) for entry in self.inline or []]


class UnsubscribeSpec(_StrictModel):
    """What removing a member from the list means for their subscriptions."""

    # Iterable's campaign ids are int64 (OpenAPI UnsubscribeRequest.campaignId).
    campaignId: Annotated[int, Field(gt=0, lt=2**63), WHOLE_NUMBER] | None = Field(
        default=None, description="Campaign to attribute unsubscribes to."
    )
    channelUnsubscribe: bool = Field(
        default=False, description="Also unsubscribe removed members from the channel."
    )


class AudienceSpec(_StrictModel):
    """One Iterable list and the members it must have."""

    destination: NonEmptyStr = Field(description="Name of a Destination document.")
    listName: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=255,
                # A character that is not a space (_list_name), for an editor.
                json_schema_extra={"not": NOT_ONE_LINE, "pattern": r"\S"},
            ),
            AfterValidator(_list_name),
        ]
        | None
    ) = Field(default=None, description="Iterable list name; defaults to metadata.name.")
    # Iterable's list ids are int64, as its campaign ids are. A name is all Iterable's web
    # app lets a person change: the id ties the audience to its list through a rename.
    listId: Annotated[int, Field(gt=0, lt=2**63), WHOLE_NUMBER] | None = Field(
        default=None,
        description="The list's id in Iterable (import writes it): the plan manages only "
        "that list, and when Iterable has it under another name (renamed in its web app) "
        "or not at all, leaves the audience out and says so rather than create a new list.",
    )
    description: str | None = Field(default=None, description="Used when the list is created.")
    members: MembersSpec
    updateExistingUsersOnly: bool = Field(
        default=False,
        description="true: subscribing never creates a user; members Iterable does not know "
        "are reported as not created. Refused for an email-based project, where Iterable "
        "ignores it.",
    )
    unsubscribe: UnsubscribeSpec = Field(default_factory=UnsubscribeSpec)
    policy: RemovalPolicySpec = Field(
        default_factory=RemovalPolicySpec, description="Overrides the destination's policy."
    )
    traits: NonEmptyStr | None = Field(
        default=None,
        description="Name of a TraitMapping: Iterable user fields kept in line with this "
        "audience's source columns. Without it no profile field is written.",
    )
    minMembers: Annotated[int, Field(ge=0), WHOLE_NUMBER] | None = Field(
        default=None,
        description="Block a plan that changes the list and leaves it with fewer members "
        "than this (a source that shrinks a little each run cannot drain it).",
    )
    maxMembers: Annotated[int, Field(ge=0), WHOLE_NUMBER] | None = Field(
        default=None,
        description="Block a plan that changes the list and leaves it with more members than this.",
    )
    removals: Literal["allowed", "never"] = Field(
        default="allowed",
        description="never: an add-only audience; members missing from the source are "
        "never removed (the plan says how many it held back).",
    )
    allowEmpty: bool = Field(
        default=False,
        description="Allow a source that yields no members to empty a list that has "
        "members (default false: such a plan is blocked, as an empty export is far more "
        "often a failed job than an intended unsubscribe of everyone).",
    )
    resubscribe: Literal["never", "allowed"] = Field(
        default="never",
        description="never (default): members who left the list by their own action (an "
        "unsubscribe link, a preference centre) or whose profile is unsubscribed from the "
        "list's channel are not re-added; the plan shows them as held back. allowed: they "
        "are re-added, and every plan says so in bold.",
    )

    @model_validator(mode="after")
    def _bounds_in_order(self) -> AudienceSpec:
        if (
            self.minMembers is not None
            and self.maxMembers is not None
            and self.minMembers > self.maxMembers
        ):
            raise PydanticCustomError(
                "bounds_order",
                "must not be greater than maxMembers ({maximum})",
                {"maximum": self.maxMembers, AT: "minMembers"},
            )
        return self


# Profile fields Iterable manages itself, and why a trait mapping must not write each. Its
# support article 217744303 ("User Profile Fields Used by Iterable") lists the fields it
# manages, which "should not be included in calls to POST /api/users/update or other
# endpoints that update user profiles"; its OpenAPI (bulkUpdate) says an update of
# emailListIds, unsubscribedChannelIds or unsubscribedMessageTypeIds makes no subscribe or
# unsubscribe event. Names are case-sensitive there (the same article): `Email` is a field
# of its own. phoneNumber is not here: Iterable takes it from a user update (Segment's
# Iterable destination sends it in dataFields). devices holds the push tokens
# registerDeviceToken registers (the OpenAPI calls it an "Iterable-managed array"), and
# browserTokens those registerBrowserToken registers for web push: a mapping writing either
# would take people off push, or put them on it, with no opt-in; Iterable does not say what
# a user update does to them, so both are refused.
_IDENTITY = "it identifies the user: writing it changes whose profile this is"
_MEMBERSHIP = "list membership changes only through subscribe and unsubscribe"
_CONSENT = (
    "it holds the person's consent: a user update changes it with no subscribe or unsubscribe event"
)
_PUSH = (
    "it holds the person's push registrations: a user update replaces them with no subscribe "
    "or unsubscribe event"
)
_ITERABLES = "Iterable sets it itself"
SYSTEM_FIELD_REASONS: dict[str, str] = {
    "email": _IDENTITY,
    "userId": _IDENTITY,
    "emailListIds": _MEMBERSHIP,
    "userListIds": _MEMBERSHIP,
    "unsubscribedChannelIds": _CONSENT,
    "unsubscribedMessageTypeIds": _CONSENT,
    "subscribedMessageTypeIds": _CONSENT,
    "devices": _PUSH,
    "browserTokens": _PUSH,
    "signupDate": _ITERABLES,
    "signupSource": _ITERABLES,
    "profileUpdatedAt": _ITERABLES,
    "itblInternal": _ITERABLES,
    "itblUserId": _ITERABLES,
    "itblDS": _ITERABLES,
    "receivedSMSDisclaimer": _ITERABLES,
}
SYSTEM_FIELDS = tuple(SYSTEM_FIELD_REASONS)
TRAIT_TYPES = ("string", "number", "boolean", "date", "object", "list")
TraitType = Literal["string", "number", "boolean", "date", "object", "list"]


def _template_syntax(value: str) -> str:
    # Imported here: the template engine is only needed by manifests that use templates.
    from reconciler.traits.template import template_problem

    found = template_problem(value)
    if found is not None:
        problem, line = found
        raise PydanticCustomError(
            "template_syntax", "{problem}", {"problem": problem, TEMPLATE_LINE: line}
        )
    return value


TemplateText = Annotated[str, AfterValidator(_template_syntax), Field(min_length=1)]


class TraitFieldSpec(_StrictModel):
    """Where one Iterable field's value comes from: a column (`from`) or a template."""

    model_config = ConfigDict(
        populate_by_name=False,
        json_schema_extra={
            "oneOf": [
                {"required": ["from"], "properties": {"from": {"type": "string"}}},
                {"required": ["template"], "properties": {"template": {"type": "string"}}},
            ]
        },
    )

    from_: NonEmptyStr | None = Field(
        default=None, alias="from", description="Source column holding the value."
    )
    template: TemplateText | None = Field(
        default=None,
        description="jinja2 template rendered per member (sandboxed); columns are variables, "
        "and `row` maps every column name to its value.",
    )
    type: TraitType | None = Field(
        default=None,
        description="Convert the value to this type before sending it (default: as the "
        "source gives it). Dates are sent as Iterable stores them: YYYY-MM-DD HH:MM:SS +00:00.",
    )
    # A mapping holds daily fields (a score) beside stable ones (a plan tier): the
    # field_changes guard is set where the field is, over the audiences' policy.
    maxChangePercent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        default=None,
        description="Block a plan that replaces this field's value with another on more than "
        "this share of the members whose value it compared, whatever the audience's "
        "maxFieldChangePercent (compared with '>'; default: the audience's policy).",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TraitFieldSpec:
        if (self.from_ is None) == (self.template is None):
            raise PydanticCustomError("exactly_one", "give exactly one of from, template")
        return self


def _trait_field_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "column"
    if isinstance(value, Mapping | TraitFieldSpec):
        return "field"
    return None


TraitFieldEntry = Annotated[
    Annotated[NonEmptyStr, Tag("column")] | Annotated[TraitFieldSpec, Tag("field")],
    Discriminator(
        _trait_field_kind,
        custom_error_type="trait_field_type",
        custom_error_message="expected a column name, or a mapping with from (and type) or "
        "template",
    ),
]


def _field_name(value: str) -> str:
    _one_line(value, "field name")
    reason = SYSTEM_FIELD_REASONS.get(value)
    if reason is not None:
        raise PydanticCustomError(
            "system_field",
            "{name} is a field Iterable manages itself; a trait mapping cannot write it ({reason})",
            {"name": value, "reason": reason},
        )
    return value


FieldName = Annotated[str, Field(pattern=FIELD_NAME_PATTERN), AfterValidator(_field_name)]


class TraitMappingSpec(_StrictModel):
    """Iterable user fields and where each one's value comes from."""

    fields: Annotated[dict[FieldName, TraitFieldEntry], Field(min_length=1)] = Field(
        description="Iterable field -> a source column (`planTier: plan`), "
        "{from: column, type: ...}, or {template: ...}. Fields not listed are left alone.",
        # patternProperties alone would let other names through.
        json_schema_extra={
            "additionalProperties": False,
            "propertyNames": {"not": {"anyOf": [{"enum": list(SYSTEM_FIELDS)}, NOT_ONE_LINE]}},
        },
    )
    mergeNestedObjects: bool = Field(
        default=False,
        description="Merge object fields into what the profile has instead of replacing them.",
    )

    def field_specs(self) -> dict[str, TraitFieldSpec]:
        """Every field in its long form (a bare column name becomes {from: column})."""
        return {
            name: entry
            if isinstance(entry, TraitFieldSpec)
            else TraitFieldSpec.model_validate({"from": entry})
            for name, entry in self.fields.items()
        }


class DestinationDocument(_StrictModel):
    """A `kind: Destination` document."""

    apiVersion: Literal["reconciler/v1"] = Field(description=_API_VERSION_HELP)
    kind: Literal["Destination"] = Field(description=_KIND_HELP)
    metadata: Metadata
    spec: DestinationSpec


class AudienceDocument(_StrictModel):
    """A `kind: Audience` document."""

    apiVersion: Literal["reconciler/v1"] = Field(description=_API_VERSION_HELP)
    kind: Literal["Audience"] = Field(description=_KIND_HELP)
    metadata: Metadata
    spec: AudienceSpec


class TraitMappingDocument(_StrictModel):
    """A `kind: TraitMapping` document."""

    apiVersion: Literal["reconciler/v1"] = Field(description=_API_VERSION_HELP)
    kind: Literal["TraitMapping"] = Field(description=_KIND_HELP)
    metadata: Metadata
    spec: TraitMappingSpec


class DocumentEnvelope(_StrictModel):
    """The fields every document has; checked alone when the kind is not one we know."""

    apiVersion: Literal["reconciler/v1"]
    kind: Any = None
    metadata: Metadata
    spec: Any = None


DOCUMENT_MODELS: dict[
    str, type[DestinationDocument] | type[AudienceDocument] | type[TraitMappingDocument]
] = {
    "Destination": DestinationDocument,
    "Audience": AudienceDocument,
    "TraitMapping": TraitMappingDocument,
}

ManifestDocument = Annotated[
    DestinationDocument | AudienceDocument | TraitMappingDocument, Field(discriminator="kind")
]
