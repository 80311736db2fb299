from django.contrib import admin

from apps.music.models import Album, Artist, Track, TrackArtist


@admin.register(Artist)
class ArtistAdmin(admin.ModelAdmin):
    list_display = ["name", "spotify_id", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "name_key", "spotify_id"]
    readonly_fields = ["name_key", "created_at"]
    show_full_result_count = False


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = ["name", "artist", "spotify_id", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "name_key", "artist__name", "spotify_id"]
    list_select_related = ["artist"]
    raw_id_fields = ["artist"]
    readonly_fields = ["name_key", "created_at"]
    show_full_result_count = False


class TrackArtistInline(admin.TabularInline):
    model = TrackArtist
    raw_id_fields = ["artist"]
    extra = 0


@admin.register(Track)
class TrackAdmin(admin.ModelAdmin):
    list_display = ["name", "primary_artist", "album", "kind", "uri", "first_source"]
    list_filter = ["kind", "first_source"]
    search_fields = ["name", "uri", "primary_artist__name", "album__name"]
    list_select_related = ["primary_artist", "album"]
    raw_id_fields = ["album", "primary_artist"]
    readonly_fields = ["uri", "name_key", "first_source", "created_at"]
    inlines = [TrackArtistInline]
    show_full_result_count = False
