from datetime import UTC, datetime

PLAYS = "/admin/history/play/"


def _plays(admin_client, **params):
    response = admin_client.get(PLAYS, params)
    assert response.status_code == 200
    return [(p.user.username, p.track.name) for p in response.context["cl"].result_list]


def test_search_finds_plays_by_user_name_track_name_and_uri(
    admin_client, user, other_user, make_track, make_play
):
    karma = make_track("Karma Police", "Radiohead", uri="spotify:track:kp")
    teardrop = make_track("Teardrop", "Massive Attack", uri="spotify:track:td")
    make_play(user, karma, datetime(2025, 1, 1, tzinfo=UTC))
    make_play(other_user, teardrop, datetime(2025, 1, 2, tzinfo=UTC))
    assert _plays(admin_client, q="karma") == [("alice", "Karma Police")]
    assert _plays(admin_client, q="bob") == [("bob", "Teardrop")]
    assert _plays(admin_client, q="spotify:track:td") == [("bob", "Teardrop")]
    assert _plays(admin_client, q="nothing-like-this") == []


def test_all_users_list_newest_stored_first_and_one_user_by_played_at(
    admin_client, user, other_user, make_track, make_play
):
    track = make_track()
    make_play(user, track, datetime(2025, 1, 3, tzinfo=UTC))
    make_play(other_user, track, datetime(2025, 1, 9, tzinfo=UTC))
    make_play(user, track, datetime(2025, 1, 1, tzinfo=UTC))
    make_play(user, track, datetime(2025, 1, 2, tzinfo=UTC))
    response = admin_client.get(PLAYS)
    days = [p.played_at.day for p in response.context["cl"].result_list]
    assert days == [2, 1, 9, 3]  # newest stored first
    response = admin_client.get(PLAYS, {"user__id__exact": user.pk})
    assert [p.played_at.day for p in response.context["cl"].result_list] == [3, 2, 1]


def test_the_change_page_shows_the_play_read_only_without_its_copies(
    admin_client, user, make_track, make_play
):
    play = make_play(
        user, make_track("Karma Police", "Radiohead"), datetime(2025, 1, 1, tzinfo=UTC)
    )
    response = admin_client.get(f"{PLAYS}{play.pk}/change/")
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.fields) == []  # every shown field is read-only
    body = response.content.decode()
    assert "Karma Police" in body
    assert 'name="artist"' not in body and 'name="duration_ms"' not in body
