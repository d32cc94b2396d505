"""The member model's public surface: what the rest of reconciler uses of members/.

Identity rules and their messages live in identity.py (imported from there: plan/ needs
them without DuckDB); the one fingerprint of a live list in fingerprint.py; the DuckDB
engine behind large audiences in engine/. Code outside members/ imports the engine from
here, never from engine/'s modules, so the engine can change behind this list.

    Engine, EngineSettings           the workspace, and which audiences it plans
    load_desired, estimate_rows      a source read and checked in DuckDB (a DesiredTable)
    read_live_table, load_live_file, a list's members read into the workspace, resolved,
    resolve_user_ids, describe_live    and described (a LiveTable); user_id_candidates and
                                       resolve_candidates: the resolution in two halves
    read_export_table, ...           the same from one user export
    diff_tables, keep_skipped_rows,  adds and removes as tables (a TableDiff)
      keep_respelled_rows
    TableRows, member_rows, ...      those tables read back in batches, for apply and files
    SavedPlanTables                  a saved plan's large member sets, read into the workspace
    lower_sql                        SQL lower-casing text as Python's str.lower() does
    digest_members, MembersDigest    the live list's fingerprint, equal under both engines
"""

from reconciler.members.engine import Engine, EngineSettings
from reconciler.members.engine.desired_table import (
    LOOKS_LIKE_EMAIL,
    DesiredTable,
    estimate_rows,
    load_desired,
)
from reconciler.members.engine.diff import (
    LiveTable,
    TableDiff,
    describe_live,
    diff_tables,
    keep_respelled_rows,
    keep_skipped_rows,
    load_live_file,
    needs_user_id_resolution,
    read_live_table,
    resolve_candidates,
    resolve_user_ids,
    user_id_candidates,
)
from reconciler.members.engine.export_table import (
    EXPORT_BY_LIST_FROM,
    export_by_list,
    export_rows,
    live_from_export,
    read_export_table,
)
from reconciler.members.engine.prefetch import (
    EXPORT_ROUTES,
    ExportDownload,
    Prefetch,
    SharedExports,
    abandon_all,
    start_prefetch,
)
from reconciler.members.engine.rows import (
    TableRows,
    batches,
    identifier_rows,
    identifiers_into_table,
    member_rows,
    members_into_table,
)
from reconciler.members.engine.saved import SavedPlanTables
from reconciler.members.engine.workspace import (
    interrupted_by_signal,
    lower_sql,
    remove_directories,
)
from reconciler.members.fingerprint import MembersDigest, digest_members

__all__ = [
    "EXPORT_BY_LIST_FROM",
    "EXPORT_ROUTES",
    "LOOKS_LIKE_EMAIL",
    "DesiredTable",
    "Engine",
    "EngineSettings",
    "ExportDownload",
    "LiveTable",
    "MembersDigest",
    "Prefetch",
    "SavedPlanTables",
    "SharedExports",
    "TableDiff",
    "TableRows",
    "abandon_all",
    "batches",
    "describe_live",
    "diff_tables",
    "digest_members",
    "estimate_rows",
    "export_by_list",
    "export_rows",
    "identifier_rows",
    "identifiers_into_table",
    "interrupted_by_signal",
    "keep_respelled_rows",
    "keep_skipped_rows",
    "live_from_export",
    "load_desired",
    "load_live_file",
    "lower_sql",
    "member_rows",
    "members_into_table",
    "needs_user_id_resolution",
    "read_export_table",
    "read_live_table",
    "remove_directories",
    "resolve_candidates",
    "resolve_user_ids",
    "start_prefetch",
    "user_id_candidates",
]
