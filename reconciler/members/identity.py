"""Who a member is, per Iterable project type.

Iterable stores emails lowercase and compares them case-insensitively, while userIds are
case-sensitive, at most 52 printable ASCII characters with no trailing space
(shared/iterable-api.md). One identity key per member: the email in email-based projects,
the userId in userID-based projects, and in hybrid projects the userId when the source
gives one, otherwise the email.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

ProjectType = Literal["hybrid", "userId", "email"]
KeyKind = Literal["email", "userId"]

MAX_USER_ID_LENGTH = 52
# A number as a spreadsheet shows one too long for its cell, and saves it so in a CSV:
# Excel, Numbers and Google Sheets write a 12-digit userId as `1.23457E+11`, its other
# digits lost. Sent, it names a profile nobody has. Only with an `E+` exponent, which no
# hash or UUID holds (hex ids have no `+`), so no real userId is refused. A German or
# French Excel writes a decimal comma (`4,91512E+12`).
EXPONENT_USER_ID_PATTERN = r"[+-]?[0-9]+(?:[.,][0-9]+)?[eE]\+[0-9]+"
_EXPONENT_USER_ID = re.compile(EXPONENT_USER_ID_PATTERN)
# A whole number written with a fraction of zeros: pandas writes an id column that has an
# empty cell as floats (`12345.0`), as does a float column from a database. Iterable
# matches userIds as text, so `12345.0` is no user `12345`: sent, it made a second profile
# of the member and planned the real one's removal. The row is skipped and its member kept
# (skipped_identifiers gives the whole number); the whole number is never sent in its
# place, since the text may be another userId of its own (SQL: the regex only for a
# userId holding a `.`).
FLOAT_USER_ID_PATTERN = r"[0-9]+\.0+"
_FLOAT_USER_ID = re.compile(FLOAT_USER_ID_PATTERN)
# The summary row a CRM report or a sheet ends with (`Total: 3,421`, `Grand Totals (3,421
# records)`), which in a file of userIds reads as one: its email cell, where there is one,
# is no address, but a userId can be any text. So does the row count a query tool ends
# its output with: psql's `(3 rows)` (`psql -A -F, -c 'SELECT user_id ...' > ids.csv`)
# and sqlcmd's `(3 rows affected)`. (RE2 reads the pattern alike.)
SUMMARY_USER_ID_PATTERN = (
    r"(?i)(?:grand )?(?:sub)?totals?(?:[: ].*)?|\([0-9][0-9,]* rows?(?: affected)?\)"
)
_SUMMARY_USER_ID = re.compile(SUMMARY_USER_ID_PATTERN)
# What every userId the pattern matches holds, tested first by both engines.
SUMMARY_HINTS = ("otal", "OTAL", " row")
# How an export writes a missing value, which a userId column with empty places then holds
# as text: `\N` (MySQL's and Hive's dumps, Snowflake's `COPY INTO` unless NULL_IF says
# otherwise), `NULL` (SQL Server Management Studio's saved results), `NaN`, `nan`, `None`
# and `<NA>` (pandas after astype(str); `NaT` for its times), `NA` (R's write.csv), `N/A`,
# `null`, `undefined` (Java, Spark, JavaScript, scripts). Sent, each named one profile
# that every such member was merged into (and in a hybrid project the rows after the first
# were dropped as its duplicates). Only so short a userId is tested
# (MISSING_VALUE_MAX_LENGTH), cheaply by both engines.
MISSING_VALUE_USER_ID_PATTERN = r"(?i)\\N|null|nan|nat|none|<na>|na|n/a|undefined"
MISSING_VALUE_MAX_LENGTH = 9
_MISSING_VALUE_USER_ID = re.compile(MISSING_VALUE_USER_ID_PATTERN)
# A spreadsheet's error value, which a formula that failed exports as its text: a lookup
# that found nothing (`#N/A`, the commonest), a reference or a name gone (`#REF!`,
# `#NAME?`), as Excel, Google Sheets and Numbers write them, and LibreOffice's `Err:502`.
# Sent, `#N/A` was one profile every unmatched row was merged into. Each starts with `#`
# or `Err:`, tested first by both engines.
SPREADSHEET_ERROR_PATTERN = (
    r"#(?:N/A|REF!|VALUE!|NAME\?|DIV/0!|NUM!|NULL!|SPILL!|CALC!|FIELD!|BLOCKED!|CONNECT!"
    r"|BUSY!|UNKNOWN!|GETTING_DATA|ERROR!)|Err:[0-9]{3}"
)
_SPREADSHEET_ERROR = re.compile(SPREADSHEET_ERROR_PATTERN)
SPREADSHEET_ERROR_STARTS = ("#", "Err:")
# Excel's keep-the-zeros trick: a file written for Excel to open writes an id with leading
# zeros as the formula `="00123"`, which Excel shows as the text 00123 but which is the
# cell's text in the CSV. Sent, `="00123"` named a profile nobody has, and the live member
# 00123 was planned for removal. The row is skipped and the text inside kept as its live
# member (skipped_identifiers), never sent in its place: the text sent is the text given
# (a userId may be any printable text). An email cell `="a@x.com"` likewise.
EXCEL_TEXT_START = '="'
EXCEL_TEXT_PATTERN = r'="[^"]*"'
_EXCEL_TEXT = re.compile(EXCEL_TEXT_PATTERN)
# UTF-8 text read as Windows-1252 and saved again (mojibake): a UTF-8 file opened in Excel
# on Windows, which takes one without a byte-order mark for the system's code page, and
# saved as "CSV UTF-8", writes `élise@x.com` as `Ã©lise@x.com`. The simple rule takes it,
# so the plan added that address and removed the member `élise@x.com`. Each character of a
# two-byte sequence becomes a letter from Â to ô (lower-cased: â to þ) followed by what
# Windows-1252 makes of a continuation byte (0x80-0xBF), a pair no address holds. Read as
# Latin-1 instead, the second character is a control character, which no address holds
# either (the rule's isprintable).
_MOJIBAKE_FOLLOWERS = bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore") + "\u00ff"
MOJIBAKE_PATTERN = f"[\u00c2-\u00fe][{_MOJIBAKE_FOLLOWERS}]"
_MOJIBAKE = re.compile(MOJIBAKE_PATTERN)
# Deliberately simple: one '@', a dot in the domain, no whitespace. Iterable is the final
# judge (it answers invalidEmails per member); this only keeps obvious garbage from being sent.
_EMAIL = re.compile(r"^[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]+$")


def refused_by_iterable(email: str) -> bool:
    """Whether Iterable refuses a (lower-cased) address the simple rule takes. Iterable
    judges emails with Apache Commons' EmailValidator (support article 209082806), whose
    every version wants the local part as dot-separated words unless quoted (no `.` first
    or last, no `..`: `john..smith@x.com`, a typo that passed here and failed at apply)
    and an ASCII top-level domain of two letters or more (`x.c0m`, `x.c`, `10.0.0.1`).
    Only that is refused here: newer versions also check the domain against IANA's list
    and read internationalised ones (`xn--p1ai`, `рф`), which are left to Iterable. The
    DuckDB engine tests the same (desired_table.email_pattern)."""
    tld = email.rpartition(".")[2]
    if tld.isascii() and not tld.startswith("xn--") and not (len(tld) >= 2 and tld.isalpha()):
        return True
    local = email.rpartition("@")[0]
    return '"' not in local and (local.startswith(".") or local.endswith(".") or ".." in local)


class InvalidIdentity(ValueError):
    """A member cannot be identified. `reason` says why; `value` is the offending identifier,
    kept apart so output that may be published can mask it."""

    def __init__(self, reason: str, value: str | None = None):
        self.reason = reason
        self.value = value
        super().__init__(f"{reason} {value!r}" if value is not None else reason)


@dataclass(frozen=True, slots=True)
class Member:
    """One desired list member: its identity key plus whatever identifiers the source gave."""

    key: str
    key_kind: KeyKind
    email: str | None = None
    user_id: str | None = None
    traits: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Every identifier Iterable may report this member by (getUsers gives one of them)."""
        return tuple(i for i in (self.email, self.user_id) if i is not None)


# Why a member cannot be identified, worded once for both engines: the Python engine
# raises these, the DuckDB engine stores a small code per row and words it through them.


def invalid_email(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity("invalid email", raw)


def user_id_too_long(raw: str) -> InvalidIdentity:
    return InvalidIdentity(
        f"userId is {len(raw)} characters (Iterable allows at most {MAX_USER_ID_LENGTH}):", raw
    )


def user_id_not_ascii(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity("userId has characters outside printable ASCII:", raw)


def user_id_ends_with_space(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity("userId ends with a space:", raw)


def user_id_in_exponent_form(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "userId is a number in a spreadsheet's exponent form, its digits lost (format the "
        "column as a number with no decimals and export again; an id of more than 15 digits, "
        "which a spreadsheet cannot hold as a number, would end in zeros: import the first "
        "export with the column as text instead):",
        raw,
    )


def user_id_as_a_float(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "userId is a whole number written with a decimal point, as pandas writes an id "
        "column with empty cells; Iterable would take it as another userId than the number "
        "(write the column as integers, e.g. astype('Int64'), and export again):",
        raw,
    )


def user_id_is_a_summary(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "userId reads as a report's summary row or row count, not a member (remove the row):",
        raw,
    )


def user_id_is_a_missing_value(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "userId is how an export writes a missing value (\\N, NULL, NaN, None, NA), not an "
        "id (export missing values as empty cells: in pandas astype('string'), not "
        "astype(str); in Snowflake NULL_IF = (''); and export again):",
        raw,
    )


def user_id_is_a_spreadsheet_error(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "userId is a spreadsheet's error value, a formula that failed (a lookup that found "
        "nothing gives #N/A), not an id (fix the formula or remove the row, and export again):",
        raw,
    )


def user_id_is_excel_text(raw: str | None) -> InvalidIdentity:
    return _excel_text("userId", raw)


def email_is_excel_text(raw: str | None) -> InvalidIdentity:
    return _excel_text("email", raw)


def _excel_text(column: str, raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        f'{column} is Excel\'s formula ="..." (how a file written for Excel keeps leading '
        "zeros), not its text: write the value alone (export the file for import, not for "
        "Excel, or in Excel format the column as Text and save again):",
        raw,
    )


def header_repeated() -> InvalidIdentity:
    return InvalidIdentity(
        "this row repeats the header row (were two exports joined into one file?): remove it"
    )


# What is stripped from an identifier cell before comparing it with its column's name: a
# header row repeated inside a file (two exports joined with `cat`, the second keeping its
# byte-order mark). SQL's trim(cell, these) strips the same characters.
HEADER_CELL_STRIP = " \t\ufeff"


def repeats_header(
    email: tuple[str, str | None] | None, user_id: tuple[str, str | None] | None
) -> bool:
    """Whether a row's identifier cells (each `(column name, cell)`, None without that
    column) are the header's own names: the file's header again, not a member. A userId
    `userId` was sent as one."""
    given = [pair for pair in (email, user_id) if pair is not None]
    return bool(given) and all(
        name and cell is not None and cell.strip(HEADER_CELL_STRIP) == name for name, cell in given
    )


# What a typed source's (a Parquet file's, a query's) repeated header row may differ from
# its column's name by: a query renames the column the row came from (`user_id AS
# userId`), and databases fold names' case (`USER_ID`). The DuckDB engine removes the
# same characters (desired_table._spells_column_name).
NAME_SEPARATORS = " ._-"
_NAME_SEPARATORS = re.compile(r"[ ._-]")
_LOOSE_NAME = re.compile(r"[a-z0-9]+")


def loose_column_name(name: str) -> str | None:
    """A typed source's identifier column name as a repeated header row spells it: without
    NAME_SEPARATORS, lower-cased; None for a name that then holds more than ASCII letters
    and digits (no row is taken for its header: both engines compare ASCII alike)."""
    loose = _NAME_SEPARATORS.sub("", name).lower()
    return loose if _LOOSE_NAME.fullmatch(loose) else None


def spells_column_name(cell: str | None, loose: str | None) -> bool:
    """Whether an identifier cell of a typed source is its column's name (`loose`, as
    loose_column_name gives it) but for case and separators."""
    if cell is None or loose is None:
        return False
    text = cell.strip(HEADER_CELL_STRIP)
    return all(" " <= ch <= "~" for ch in text) and _NAME_SEPARATORS.sub("", text).lower() == loose


def repeats_column_names(
    email: tuple[str | None, str | None] | None, user_id: tuple[str | None, str | None] | None
) -> bool:
    """repeats_header for a Parquet file or a query, whose rows have no header to repeat
    but may hold one loaded as data (two CSV exports joined, then converted or loaded into
    a table): each identifier cell (`(loose column name, cell)`, None without that column)
    spells its column's name."""
    given = [pair for pair in (email, user_id) if pair is not None]
    return bool(given) and all(spells_column_name(cell, loose) for loose, cell in given)


def missing_key(project_type: ProjectType) -> InvalidIdentity:
    if project_type == "email":
        return InvalidIdentity("no email: email-based projects identify users by email")
    if project_type == "userId":
        return InvalidIdentity("no userId: userID-based projects identify users by userId")
    return InvalidIdentity("neither email nor userId given")


# How a spreadsheet's or CRM's hyperlink cell exports an address (`mailto:a@x.com`):
# reconciler's simple rule took it for an address, which Iterable then refuses, so a live
# member the cell stands for was planned for removal and never added back.
MAILTO = "mailto:"
# Punctuation a sheet or a mail client leaves around an address (`<a@x.com>`, a list's
# `a@x.com;`): no address starts or ends so, the simple rule took them, Iterable refuses
# them, and the live member a@x.com was planned for removal. Such a row is skipped as an
# invalid email, and the address inside keeps its live member (skipped_identifiers).
WRAPPED_START = ("<", "(", "[")
WRAPPED_END = (">", ";", ",", ")", "]")


def email_is_mailto_link(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "email is a mailto: link, as a spreadsheet's hyperlink cell exports it (write the "
        "address alone):",
        raw,
    )


def email_is_mojibake(raw: str | None) -> InvalidIdentity:
    return InvalidIdentity(
        "email is UTF-8 text misread as Windows-1252 and saved again (Ã© for é, as Excel "
        "saves a UTF-8 file it opened as ANSI); import the original export as UTF-8 (Excel: "
        "Data > From Text/CSV, File origin 65001: Unicode (UTF-8)) and save it again:",
        raw,
    )


def repaired_mojibake(text: str) -> str | None:
    """What `text` read before it was misread as Windows-1252 (or Latin-1) and saved as
    UTF-8 again, when it can be undone; None otherwise (a cell since lower-cased cannot)."""
    for misread in ("cp1252", "latin-1"):
        try:
            repaired = text.encode(misread).decode("utf-8")
        except UnicodeError:
            continue
        if repaired != text:
            return repaired
    return None


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if email.startswith(EXCEL_TEXT_START) and _EXCEL_TEXT.fullmatch(email):
        raise email_is_excel_text(raw)
    if email.startswith(MAILTO):
        raise email_is_mailto_link(raw)
    if email.startswith(WRAPPED_START) or email.endswith(WRAPPED_END):
        raise invalid_email(raw)
    # isprintable: control and format characters (an escape sequence, a right-to-left
    # override) are never in an address, and would reach terminals that print members.
    if not _EMAIL.match(email) or not email.isprintable() or refused_by_iterable(email):
        raise invalid_email(raw)
    if not email.isascii() and _MOJIBAKE.search(email):
        raise email_is_mojibake(raw)
    return email


def validate_user_id(raw: str) -> str:
    if raw == "":
        raise InvalidIdentity("empty userId")
    if len(raw) > MAX_USER_ID_LENGTH:
        raise user_id_too_long(raw)
    if not all(" " <= ch <= "~" for ch in raw):
        raise user_id_not_ascii(raw)
    if raw != raw.rstrip(" "):
        raise user_id_ends_with_space(raw)
    if _EXPONENT_USER_ID.fullmatch(raw):
        raise user_id_in_exponent_form(raw)
    if "." in raw and _FLOAT_USER_ID.fullmatch(raw):
        raise user_id_as_a_float(raw)
    if len(raw) <= MISSING_VALUE_MAX_LENGTH and _MISSING_VALUE_USER_ID.fullmatch(raw):
        raise user_id_is_a_missing_value(raw)
    if raw.startswith(SPREADSHEET_ERROR_STARTS) and _SPREADSHEET_ERROR.fullmatch(raw):
        raise user_id_is_a_spreadsheet_error(raw)
    if raw.startswith(EXCEL_TEXT_START) and _EXCEL_TEXT.fullmatch(raw):
        raise user_id_is_excel_text(raw)
    # `otal`, `OTAL` or ` row` first, as the DuckDB engine tests it (quickly) before its
    # regex, so both engines refuse exactly the same userIds.
    if (SUMMARY_HINTS[0] in raw or SUMMARY_HINTS[1] in raw or SUMMARY_HINTS[2] in raw) and (
        _SUMMARY_USER_ID.fullmatch(raw)
    ):
        raise user_id_is_a_summary(raw)
    return raw


def _loosened(raw: str) -> str:
    """What a mistyped identifier most likely stands for: NFKC (fullwidth forms such as
    U+FF20 become ASCII), format characters (zero-width spaces, joiners, a byte-order mark)
    removed wherever they are, and whitespace stripped from both ends."""
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    return text[start:end]


def _blank(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("Z")


def skipped_identifiers(email: str | None, user_id: str | None) -> set[str]:
    """The identifiers a row skipped as invalid may still stand for: each identifier it
    carries, loosened as Iterable would read it (emails also lower-cased). A live member
    reported by one of these is not removed: the row says they belong on the list, only in
    a form that cannot be sent (issue 19). Both engines use this one function."""
    out: set[str] = set()
    if email is not None:
        loose = _loosened(email.lower()).lower()
        if loose:
            out.add(loose)
        if _EXCEL_TEXT.fullmatch(loose):  # `="a@x.com"` stands for a@x.com
            loose = _loosened(loose[2:-1])
            if loose:
                out.add(loose)
        if loose.startswith(MAILTO):  # the address the link is to
            loose = _loosened(loose.removeprefix(MAILTO))
            if loose:
                out.add(loose)
        inside = _loosened(loose.lstrip("".join(WRAPPED_START)).rstrip("".join(WRAPPED_END)))
        if inside:  # the address inside the punctuation around it
            out.add(inside)
        repaired = repaired_mojibake(email.strip()) if not email.isascii() else None
        if repaired:  # the address before it was misread (élise@x.com for Ã©lise@x.com)
            out.add(_loosened(repaired).lower())
    if user_id is not None:
        loose = _loosened(user_id)
        if loose:
            out.add(loose)
        if _FLOAT_USER_ID.fullmatch(loose):  # `12345.0` stands for the userId 12345
            out.add(loose.partition(".")[0])
        if _EXCEL_TEXT.fullmatch(loose) and _loosened(loose[2:-1]):  # `="00123"`: 00123
            out.add(_loosened(loose[2:-1]))
    return out


def respellable(email: str) -> bool:
    """Whether an email may have another spelling (other_spellings): plain ASCII without a
    punycode label has none. The DuckDB engine's test is the same (strlen <> length, or
    'xn--' in it), so only such rows are ever respelled, cheaply at any size."""
    return not email.isascii() or "xn--" in email


def other_spellings(email: str) -> frozenset[str]:
    """The other spellings of a (normalised) email that Iterable may hold for the same
    address: its local part and domain composed and decomposed (NFC, NFD), and its domain
    in ASCII (IDNA's punycode, `xn--bcher-kva.de`) and in Unicode form (`bücher.de`), all
    lower-cased. A live member reported by one of these is not removed when the source has
    the email, and the email is not added beside it: which of them Iterable accepts, and
    whether it folds them into one, is not documented (shared/iterable-api.md).

    Labels are converted by punycode alone (RFC 3492, on the NFC form), not Python's
    `idna` codec: that is IDNA 2003, whose nameprep maps `faß.de` to `fass.de`, another
    domain under IDNA 2008. So a domain with ß, final sigma or a joiner is matched in its
    own ASCII form (`xn--fa-hia.de`), never with its IDNA 2003 one. Both engines use this
    one function."""
    if not respellable(email):
        return frozenset()
    local, at, domain = email.rpartition("@")
    if not at:
        return frozenset()
    unicode_domain = ".".join(_label_unicode(label) for label in domain.split("."))
    nfc_domain = unicodedata.normalize("NFC", unicode_domain)
    domains = {
        nfc_domain,
        unicodedata.normalize("NFD", unicode_domain),
        ".".join(_label_ascii(label) for label in nfc_domain.split(".")),
    }
    locals_ = {unicodedata.normalize(form, local) for form in ("NFC", "NFD")}
    spellings = {f"{part}@{host}".lower() for part in locals_ for host in domains}
    spellings.discard(email)
    return frozenset(spellings)


def _label_ascii(label: str) -> str:
    """A domain label in ASCII: punycode with IDNA's `xn--` prefix when not ASCII."""
    if label.isascii():
        return label
    return "xn--" + label.encode("punycode").decode("ascii")


def _label_unicode(label: str) -> str:
    """A domain label in Unicode: an `xn--` label decoded, any other label as it is (and an
    `xn--` label that is not punycode of a non-ASCII label too)."""
    if not label.startswith("xn--") or not label.isascii():
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return label
    return decoded if not decoded.isascii() and _label_ascii(decoded) == label else label


def duplicate_conflict(first: Member, later: Member, earlier: str) -> str | None:
    """The message for a row whose key an earlier row (`earlier` names it) had, when the
    two disagree: the first row wins. None when they agree. Values are not named: they
    may be personal data. Both engines word conflicts with this."""
    parts = []
    if later.email != first.email:
        parts.append("a different email")
    if later.user_id != first.user_id:
        parts.append("a different userId")
    columns = sorted(
        name
        for name in first.traits.keys() | later.traits.keys()
        if first.traits.get(name) != later.traits.get(name)
    )
    if columns:
        parts.append(f"different values in {', '.join(columns)}")
    if not parts:
        return None
    difference = " and ".join(parts)
    return f"same {later.key_kind} as {earlier} (used) but {difference}: this row is ignored"


def looks_like_email(identifier: str) -> bool:
    return bool(_EMAIL.match(identifier))


def _email_of(project_type: ProjectType, email: str) -> str | None:
    """The member's email, normalised. In a userID-based project the email identifies
    nobody and is never sent (subscribers and updates carry the userId alone), so one that
    is no address (a CRM's `n/a`) is left out rather than the member skipped; elsewhere
    it would be sent, and InvalidIdentity skips the row."""
    if project_type != "userId":
        return normalise_email(email)
    try:
        return normalise_email(email)
    except InvalidIdentity:
        return None


def make_member(
    project_type: ProjectType,
    email: str | None,
    user_id: str | None,
    traits: dict[str, object] | None = None,
) -> Member:
    """Normalise and validate one member's identifiers and pick its key.

    Blank cells count as absent. Raises InvalidIdentity with a message for the user.
    """
    email = email.strip() if isinstance(email, str) and email.strip() else None
    user_id = user_id if isinstance(user_id, str) and user_id.strip() else None
    norm_email = _email_of(project_type, email) if email is not None else None
    norm_user_id = validate_user_id(user_id) if user_id is not None else None

    key_kind: KeyKind
    if project_type == "email":
        if norm_email is None:
            raise missing_key(project_type)
        key_kind, key = "email", norm_email
    elif project_type == "userId":
        if norm_user_id is None:
            raise missing_key(project_type)
        key_kind, key = "userId", norm_user_id
    else:
        if norm_user_id is not None:
            key_kind, key = "userId", norm_user_id
        elif norm_email is not None:
            key_kind, key = "email", norm_email
        else:
            raise missing_key(project_type)
    return Member(key, key_kind, norm_email, norm_user_id, dict(traits or {}))
