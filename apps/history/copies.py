# ruff: noqa: S608  (SQL built from constants only; no input reaches it)
"""Each play's copies of its track's artist, album, kind and length (`Play.artist` and the
rest), kept equal to music_track's:

- every insert writes them: the insert path reads the batch's tracks once (its COPY on
  PostgreSQL, its portable path) or joins the catalogue (its matching statement), and
  `Play.save` reads its track (a trigger on each insert would cost SQLite a third of its import
  speed);
- a play moved to another track (a local track merged into a real one) gets the new track's,
  by trigger, on both databases;
- an edit of a track (the admin) updates its plays, by trigger. On PostgreSQL that update runs
  the play totals' update trigger (`apps.history.totals`), which moves the plays' sums to the
  new artist, album, kind or length.

With the copies, the analysis of a window reads the (user, played_at) index alone, with no join
to the catalogue.
"""

from __future__ import annotations

# Play column: music_track column.
COPIES = {
    "artist_id": "primary_artist_id",
    "album_id": "album_id",
    "kind": "kind",
    "duration_ms": "duration_ms",
}
_PLAY = ", ".join(COPIES)
_TRACK = ", ".join(COPIES.values())
_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COPIES.values())
_FROM_TRACK = f"({_PLAY}) = (SELECT {_TRACK} FROM music_track k WHERE k.id = NEW.track_id)"
_FOLLOW_TRACK = (
    "UPDATE history_play SET "
    + ", ".join(f"{play} = NEW.{track}" for play, track in COPIES.items())
    + " WHERE track_id = NEW.id"
)

POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION history_play_copies() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN SELECT {_TRACK} INTO {', '.join(f'NEW.{c}' for c in COPIES)} "
    "FROM music_track WHERE id = NEW.track_id; RETURN NEW; END $$",
    "DROP TRIGGER IF EXISTS history_play_copies_relink ON history_play",
    "CREATE TRIGGER history_play_copies_relink BEFORE UPDATE OF track_id ON history_play "
    "FOR EACH ROW WHEN (OLD.track_id IS DISTINCT FROM NEW.track_id) "
    "EXECUTE FUNCTION history_play_copies()",
    "CREATE OR REPLACE FUNCTION history_track_copies() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN {_FOLLOW_TRACK}; RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS history_track_copies ON music_track",
    "CREATE TRIGGER history_track_copies AFTER UPDATE ON music_track "
    f"FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION history_track_copies()",
]
# SQLite's BEFORE triggers cannot set NEW: the row is updated right after it is written.
SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS history_play_copies_relink "
    "AFTER UPDATE OF track_id ON history_play WHEN OLD.track_id IS NOT NEW.track_id "
    f"BEGIN UPDATE history_play SET {_FROM_TRACK} WHERE id = NEW.id; END",
    "CREATE TRIGGER IF NOT EXISTS history_track_copies AFTER UPDATE ON music_track "
    f"WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN {_FOLLOW_TRACK}; END",
]
UNINSTALL = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS history_play_copies_relink ON history_play",
        "DROP TRIGGER IF EXISTS history_track_copies ON music_track",
        "DROP FUNCTION IF EXISTS history_play_copies()",
        "DROP FUNCTION IF EXISTS history_track_copies()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS history_play_copies_relink",
        "DROP TRIGGER IF EXISTS history_track_copies",
    ],
}
# Fill the copies of every stored play (the migration that added them).
BACKFILL = (
    f"UPDATE history_play SET ({_PLAY}) = "
    f"(SELECT {_TRACK} FROM music_track k WHERE k.id = history_play.track_id)"
)


# Put right the copies that differ from their track (PostgreSQL's repair, `rebuild_play_totals`:
# plays written or tracks edited with the triggers switched off).
REFILL_POSTGRESQL = (
    "UPDATE history_play p SET "
    + ", ".join(f"{play} = k.{track}" for play, track in COPIES.items())
    + f" FROM music_track k WHERE k.id = p.track_id AND "
    f"({', '.join(f'p.{c}' for c in COPIES)}) IS DISTINCT FROM "
    f"({', '.join(f'k.{c}' for c in COPIES.values())})"
)


def install_sql(vendor: str) -> list[str]:
    """The triggers for the database (statements that can run again)."""
    return POSTGRESQL if vendor == "postgresql" else SQLITE
