# ruff: noqa: S608  (SQL built from constants only; no input reaches it)
"""On PostgreSQL, the references of the tables imports write (plays, tracks, their credits and
albums) are checked by triggers a statement at a time, in place of the foreign keys' check of
each row (migrations 0016 for the plays and 0019 for the catalogue drop those constraints).

A foreign key checks each new row alone: one query and one row lock per row and per key, at
commit. An import writes batches of 50 000 plays of one user and some 20 000 tracks, so that was
100 000 checks a batch, most of them locking the same user row again: COMMIT took a quarter of
an import, and these checks made imports about 15 % faster end to end (`bench imports`, before
and after). The catalogue's keys (a track's album and artist, a credit's track and artist, an
album's artist) cost another 6 % of a first import, whose tens of thousands of new tracks each
had four checks queued for its commit. The triggers check a whole statement at once, with the
same guarantees:

- a row's new or changed reference must exist. The statement locks each row its rows refer to
  once (FOR KEY SHARE, as a foreign key's check does), so a delete of one of them waits for the
  writer's commit and then sees its rows;
- a row that others refer to can't be deleted (NO ACTION, as the foreign keys had: the ORM
  deletes or moves what refers to it first, or protects it).

A failed check raises the foreign-key violation (SQLSTATE 23503), an IntegrityError. Unlike the
deferred foreign keys, the checks run at the end of each statement, not at commit: a row must
be written after the rows it refers to, as every writer here does. Primary keys never change
here (Django doesn't update them), so updates of the referenced ids are not watched, and
neither is TRUNCATE (Django's flush empties every table at once). SQLite keeps its foreign keys:
its triggers run once a row, and checked each play at more than twice the foreign keys' cost.
"""

from __future__ import annotations

# Each referencing table: its references, (column, referenced table).
Tables = dict[str, tuple[tuple[str, str], ...]]
PLAY_REFERENCES: Tables = {
    "history_play": (("track_id", "music_track"), ("user_id", "accounts_user")),
}
CATALOGUE_REFERENCES: Tables = {
    "music_track": (("album_id", "music_album"), ("primary_artist_id", "music_artist")),
    "music_trackartist": (("track_id", "music_track"), ("artist_id", "music_artist")),
    "music_album": (("artist_id", "music_artist"),),
}
REFERENCES: Tables = PLAY_REFERENCES | CATALOGUE_REFERENCES


def _rows(column: str, *, update: bool) -> str:
    """The statement's rows to check for one reference: all new ones, or those whose reference
    changed (a merge that updates a play's time or details checks nothing, as a foreign key's
    update check skips an unchanged key). A null reference refers to nothing: `IN` and
    `count(DISTINCT)` both leave it out."""
    if not update:
        return "new_rows"
    return (
        f"(SELECT n.{column} FROM new_rows n JOIN old_rows o ON o.id = n.id "
        f"WHERE n.{column} <> o.{column})"
    )


def _check_new(table: str, references: tuple[tuple[str, str], ...], *, update: bool) -> str:
    """Lock the rows the statement's rows refer to; raise if any is missing. The distinct
    references are gathered once, by hashing (count(DISTINCT) sorts): the checks of a batch of
    50 000 plays took a third of the time they did with both."""
    return "".join(
        f"""
    IF (WITH ids AS MATERIALIZED (SELECT DISTINCT r.{column} AS id
                                  FROM {_rows(column, update=update)} r)
        SELECT (SELECT count(*) FROM (SELECT 1 FROM {target} x WHERE x.id IN (SELECT id FROM ids)
                FOR KEY SHARE OF x) f)
            <> (SELECT count(id) FROM ids)) THEN
        RAISE EXCEPTION 'insert or update on table "{table}" refers to a missing row of '
            '"{target}" ({column})' USING ERRCODE = 'foreign_key_violation';
    END IF;"""
        for column, target in references
    )


def _refuse_delete(target: str, tables: Tables) -> str:
    """Raise if a row of the statement is referred to by a row of any of `tables`."""
    return "".join(
        f"""
    IF EXISTS (SELECT 1 FROM {table} p WHERE p.{column} IN (SELECT id FROM old_rows)) THEN
        RAISE EXCEPTION 'delete on table "{target}" would leave rows of "{table}" ({column}) '
            'without their row' USING ERRCODE = 'foreign_key_violation';
    END IF;"""
        for table, references in tables.items()
        for column, referenced in references
        if referenced == target
    )


def _triggers(tables: Tables) -> dict[str, tuple[str, str, str, str]]:
    """Each trigger function that checks `tables`' references: (body, table, event, transition
    tables). A delete of a referenced row is checked against every table of REFERENCES."""
    triggers = {}
    for table, references in tables.items():
        triggers[f"{table}_references_insert"] = (
            _check_new(table, references, update=False),
            table,
            "INSERT",
            "NEW TABLE AS new_rows",
        )
        triggers[f"{table}_references_update"] = (
            _check_new(table, references, update=True),
            table,
            "UPDATE",
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        )
    for target in dict.fromkeys(t for refs in tables.values() for _, t in refs):
        triggers[f"history_{target}_deleted"] = (
            _refuse_delete(target, REFERENCES),
            target,
            "DELETE",
            "OLD TABLE AS old_rows",
        )
    return triggers


def install_sql(tables: Tables = REFERENCES) -> list[str]:
    return [
        statement
        for name, (body, table, event, transition) in _triggers(tables).items()
        for statement in (
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body}\n    RETURN NULL;\nEND $$",
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
        )
    ]


def uninstall_sql(tables: Tables = REFERENCES) -> list[str]:
    return [
        statement
        for name, (_, table, _, _) in _triggers(tables).items()
        for statement in (
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"DROP FUNCTION IF EXISTS {name}()",
        )
    ]
