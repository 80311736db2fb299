"""The site in Chromium against a live server: the flows people use, with the CSP enforced."""

import csv
import io
from datetime import UTC, datetime

import pytest

from apps.accounts.models import User
from apps.history.models import Play
from tests.conftest import screenshot
from tests.site.browser import csp_violations, sign_in, watch_console

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def alice(user, other_user, make_track, make_play):
    song = make_track("Paranoid Android", "Radiohead", "OK Computer")
    other = make_track("Teardrop", "Massive Attack", "Mezzanine")
    for day in range(1, 6):
        make_play(user, song, datetime(2025, 1, day, 20, tzinfo=UTC))
    make_play(user, other, datetime(2025, 1, 7, 8, tzinfo=UTC), source=Play.Source.API)
    make_play(other_user, other, datetime(2025, 1, 1, tzinfo=UTC))
    return user


def test_sign_in_and_the_dashboard(page, live_server, alice):
    problems = watch_console(page)
    page.goto("/")
    screenshot(page, "home")
    sign_in(page, "alice", "pw-alice-123")
    page.click("nav >> text=Dashboard")
    assert page.text_content("#plays-total") == "6"
    assert "Spotify is not connected" in page.text_content("#connection")
    screenshot(page, "dashboard")
    assert csp_violations(problems) == []


def test_settings_offers_the_browsers_zone_and_saves_it(browser, live_server, alice):
    context = browser.new_context(base_url=live_server.url, timezone_id="Europe/Paris")
    page = context.new_page()
    problems = watch_console(page)
    sign_in(page, "alice", "pw-alice-123")
    page.goto("/settings/")
    assert page.input_value("select[name=timezone]") == "Europe/Paris"
    assert page.is_visible("#browser-zone")
    assert page.is_visible("#browser-zone-picked")
    screenshot(page, "settings")
    page.click("#timezone-form button[type=submit]")
    page.wait_for_selector("text=Time zone saved: Europe/Paris.")
    alice.refresh_from_db()
    assert alice.timezone == "Europe/Paris"
    assert csp_violations(problems) == []
    context.close()


def test_export_downloads_the_viewers_plays_as_csv(page, live_server, alice):
    problems = watch_console(page)
    sign_in(page, "alice", "pw-alice-123")
    page.goto("/settings/")
    with page.expect_download() as info:
        page.click("text=Download CSV")
    download = info.value
    assert download.suggested_filename.startswith("listening-history-alice-")
    with open(download.path(), encoding="utf-8") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    assert len(rows) == 6
    assert [r["track"] for r in rows] == ["Paranoid Android"] * 5 + ["Teardrop"]
    assert rows[-1]["source"] == "api"
    assert csp_violations(problems) == []


def test_deleting_my_data_removes_the_account(page, live_server, alice, other_user):
    problems = watch_console(page)
    sign_in(page, "alice", "pw-alice-123")
    page.goto("/settings/")
    page.click("text=Delete my data…")
    assert "your 6 plays;" in " ".join(page.text_content("#what-goes").split())
    page.fill("input[name=confirm]", "alice")
    screenshot(page, "delete-confirm")
    page.click("button:has-text('Delete everything')")
    page.wait_for_selector("text=Your account is deleted: 6 plays and 0 imports are gone")
    screenshot(page, "deleted")
    assert not User.objects.filter(username="alice").exists()
    assert Play.objects.filter(user_id=alice.pk).count() == 0
    assert Play.objects.for_user(other_user).count() == 1
    assert csp_violations(problems) == []


def test_a_phone_sized_screen_fits_without_sideways_scrolling(browser, live_server, alice):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    problems = watch_console(page)
    sign_in(page, "alice", "pw-alice-123")
    for path, name in [("/dashboard/", "phone-dashboard"), ("/settings/", "phone-settings")]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide"
        screenshot(page, name)
    assert csp_violations(problems) == []
    context.close()


def test_the_csp_is_enforced_so_an_injected_inline_script_is_reported(page, live_server, db):
    """The check above can fail: an inline script on our pages is blocked and reported."""
    problems = watch_console(page)
    page.goto("/")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.ran = 1'; document.body.appendChild(s); }"
    )
    assert page.evaluate("window.ran") is None
    assert csp_violations(problems)
