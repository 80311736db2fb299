"""The catalogue: artists, albums and tracks.

Exports carry no artist or album ids, so artists and albums are keyed by normalised name, and the
Spotify id is attached when the API brings it. A `Track` is any playable item: a music track, a
podcast episode or an audiobook chapter. For episodes and chapters, `album` is the show or the
audiobook, and there is no artist.
"""

from __future__ import annotations

from django.db import models

from apps.music.normalize import LOCAL_PREFIX, is_local_uri


class Source(models.TextChoices):
    API = "api", "Spotify API"
    EXPORT_EXTENDED = "export_extended", "Extended streaming history"
    EXPORT_ACCOUNT = "export_account", "Account data"


class Artist(models.Model):
    name = models.CharField(max_length=512)
    name_key = models.CharField(max_length=512, unique=True)
    spotify_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Album(models.Model):
    name = models.CharField(max_length=512)
    name_key = models.CharField(max_length=512)
    # No index of its own: the unique (artist, name_key) index serves lookups by artist.
    artist = models.ForeignKey(
        Artist, null=True, blank=True, on_delete=models.PROTECT, db_index=False
    )
    spotify_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # One album per (artist, name), and one per name among albums without an artist: two
        # partial indexes, which SQLite has too (it has no NULLS NOT DISTINCT).
        constraints = [
            models.UniqueConstraint(
                fields=["artist", "name_key"],
                condition=models.Q(artist__isnull=False),
                name="album_unique_per_artist",
            ),
            models.UniqueConstraint(
                fields=["name_key"],
                condition=models.Q(artist__isnull=True),
                name="album_unique_without_artist",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Track(models.Model):
    class Kind(models.TextChoices):
        MUSIC = "music", "Music"
        EPISODE = "episode", "Podcast episode"
        CHAPTER = "chapter", "Audiobook chapter"

    # spotify:track:…, spotify:episode:…, spotify:audiobook-chapter id, or local:<sha1>. Only
    # `local:` URIs are looked up by prefix, through track_local: the pattern index Django adds
    # for LIKE on PostgreSQL is dropped (migration 0006), an index entry less for each new
    # track. A later change of this field would add it again.
    uri = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MUSIC)
    name = models.CharField(max_length=512)
    name_key = models.CharField(max_length=512)
    album = models.ForeignKey(Album, null=True, blank=True, on_delete=models.PROTECT)
    # The artist a play counts for: the first API artist, or the export's album artist. No
    # index of its own: the (primary_artist, name_key) index serves lookups by artist.
    primary_artist = models.ForeignKey(
        Artist,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="primary_tracks",
        db_index=False,
    )
    artists: models.ManyToManyField[Artist, TrackArtist] = models.ManyToManyField(
        Artist, through="TrackArtist", related_name="tracks", blank=True
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    first_source = models.CharField(max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    # For a local track: when Spotify search last looked for its real one
    # (apps.history.collection.resolve_local_tracks), so it is not searched for again.
    searched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["primary_artist", "name_key"]),
            # The few tracks that are not music, which the analysis leaves out by id.
            models.Index(fields=["id"], condition=~models.Q(kind="music"), name="track_not_music"),
            # The few local tracks, which merges and Spotify searches look for.
            models.Index(
                fields=["id"], condition=models.Q(uri__startswith=LOCAL_PREFIX), name="track_local"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_local(self) -> bool:
        return is_local_uri(self.uri)


class TrackArtist(models.Model):
    """The ordered credit list of a track, as Spotify's API gives it; position 0 is the primary
    artist. A track known only from exports has none: an export names the album's artist alone,
    which the track keeps as its primary artist."""

    # No index of its own: the unique (track, …) indexes serve lookups by track.
    track = models.ForeignKey(Track, on_delete=models.CASCADE, db_index=False)
    artist = models.ForeignKey(Artist, on_delete=models.PROTECT)
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["track", "position"]
        constraints = [
            models.UniqueConstraint(fields=["track", "position"], name="track_artist_position"),
            models.UniqueConstraint(fields=["track", "artist"], name="track_artist_once"),
        ]

    def __str__(self) -> str:
        return f"{self.artist_id} #{self.position} on {self.track_id}"
