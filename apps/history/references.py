# ruff: noqa: S608  (SQL built from constants only; no input reaches it)
"""On PostgreSQL, each play's user and track are checked by triggers a statement at a time, in
place of the foreign keys' check of each row (migration 0016 drops the two constraints).

A foreign key checks each new row alone: one query and one row lock per play and per key, at
commit. An import writes batches of 50 000 plays of one user and some 20 000 tracks, so that was
100 000 checks a batch, most of them locking the same user row again: COMMIT took a quarter of
an import, and these checks made imports about 15 % faster end to end (`bench imports`, before
and after). They check a whole statement at once, with the same guarantees:

- a play's new or changed user and track must exist. The statement locks each row its plays
  refer to once (FOR KEY SHARE, as a foreign key's check does), so a delete of one of them waits
  for the writer's commit and then sees its plays;
- a user or a track with plays can't be deleted (NO ACTION, as the foreign keys had: the ORM
  deletes a user's plays first and protects a track's).

A failed check raises the foreign-key violation (SQLSTATE 23503), an IntegrityError. Unlike the
deferred foreign keys, the checks run at the end of each statement, not at commit. Primary keys
never change here (Django doesn't update them), so updates of `music_track.id` and
`accounts_user.id` are not watched, and neither is TRUNCATE (Django's flush empties every table
at once). SQLite keeps its foreign keys: its triggers run once a row, and checked each play at
more than twice the foreign keys' cost.
"""

from __future__ import annotations

# Each reference: the play's column, the referenced table.
REFERENCES = (("track_id", "music_track"), ("user_id", "accounts_user"))


def _rows(column: str, *, update: bool) -> str:
    """The statement's plays to check for one reference: all new ones, or those whose reference
    changed (a merge that updates a play's time or details checks nothing, as a foreign key's
    update check skips an unchanged key)."""
    if not update:
        return "new_rows"
    return (
        f"(SELECT n.{column} FROM new_rows n JOIN old_rows o ON o.id = n.id "
        f"WHERE n.{column} <> o.{column})"
    )


def _check_new(*, update: bool) -> str:
    """Lock the rows the statement's plays refer to; raise if any is missing."""
    return "".join(
        f"""
    IF (SELECT count(*) FROM (SELECT 1 FROM {table} x
            WHERE x.id IN (SELECT r.{column} FROM {_rows(column, update=update)} r)
            FOR KEY SHARE OF x) f)
       <> (SELECT count(DISTINCT r.{column}) FROM {_rows(column, update=update)} r) THEN
        RAISE EXCEPTION 'insert or update on table "history_play" refers to a missing row of '
            '"{table}" ({column})' USING ERRCODE = 'foreign_key_violation';
    END IF;"""
        for column, table in REFERENCES
    )


def _refuse_delete(column: str, table: str) -> str:
    return f"""
    IF EXISTS (SELECT 1 FROM history_play p WHERE p.{column} IN (SELECT id FROM old_rows)) THEN
        RAISE EXCEPTION 'delete on table "{table}" would leave plays without their row'
            USING ERRCODE = 'foreign_key_violation';
    END IF;"""


# function (and trigger): (body, table, event, transition tables)
_TRIGGERS = {
    "history_play_references_insert": (
        _check_new(update=False),
        "history_play",
        "INSERT",
        "NEW TABLE AS new_rows",
    ),
    "history_play_references_update": (
        _check_new(update=True),
        "history_play",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    **{
        f"history_{table}_deleted": (
            _refuse_delete(column, table),
            table,
            "DELETE",
            "OLD TABLE AS old_rows",
        )
        for column, table in REFERENCES
    },
}

INSTALL = [
    statement
    for name, (body, table, event, transition) in _TRIGGERS.items()
    for statement in (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {body}\n    RETURN NULL;\nEND $$",
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
    )
]
UNINSTALL = [
    statement
    for name, (_, table, _, _) in _TRIGGERS.items()
    for statement in (
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"DROP FUNCTION IF EXISTS {name}()",
    )
]
