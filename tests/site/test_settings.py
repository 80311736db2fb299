from django.urls import reverse


def test_settings_shows_the_current_zone_selected(client, user):
    user.timezone = "America/Los_Angeles"
    user.save()
    client.force_login(user)
    body = client.get(reverse("settings")).content.decode()
    assert '<option value="America/Los_Angeles" selected>' in body
    assert 'src="/static/js/settings.js"' in body


def test_saving_a_zone_stores_it(client, user):
    client.force_login(user)
    response = client.post(reverse("settings"), {"timezone": "Europe/Paris"}, follow=True)
    user.refresh_from_db()
    assert user.timezone == "Europe/Paris"
    assert "Time zone saved: Europe/Paris." in response.content.decode()


def test_an_unknown_zone_is_refused_with_a_message(client, user):
    client.force_login(user)
    response = client.post(reverse("settings"), {"timezone": "Mars/Olympus"})
    user.refresh_from_db()
    assert user.timezone == "UTC"
    assert "Select a valid choice" in response.content.decode()


def test_saving_a_zone_changes_only_the_viewer(client, user, other_user):
    client.force_login(user)
    client.post(reverse("settings"), {"timezone": "Asia/Tokyo"})
    other_user.refresh_from_db()
    assert other_user.timezone == "UTC"
