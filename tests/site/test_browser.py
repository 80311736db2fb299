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
    for path, name in [
        ("/dashboard/", "phone-dashboard"),
        ("/analytics/?days=365", "phone-analytics"),
        ("/assistants/", "phone-assistants"),
        ("/settings/", "phone-settings"),
    ]:
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


@pytest.fixture
def listening_history(user, other_user, make_track, make_play):
    """Alice within the last 30 days: Radiohead 3 listens on Fridays at 21:00 UTC, Massive
    Attack 2 on Sundays at 09:00 UTC; and 2 more Radiohead plays 200 days ago."""
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.now().astimezone(UTC).date()

    def last(weekday: int, weeks: int, hour: int) -> datetime:
        day = today - timedelta(days=(today.weekday() - weekday) % 7 or 7, weeks=weeks)
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    pa = make_track("Paranoid Android", "Radiohead", "OK Computer")
    td = make_track("Teardrop", "Massive Attack", "Mezzanine")
    for weeks in range(3):
        make_play(user, pa, last(4, weeks, 21))
    for weeks in range(2):
        make_play(user, td, last(6, weeks, 9))
    for weeks in (28, 29):
        make_play(user, pa, last(4, weeks, 21))
    for weeks in range(4):
        make_play(other_user, td, last(0, weeks, 3))
    return user


def _cell(page, weekday: str, hour: int) -> str:
    row = page.locator("#heatmap tbody tr", has=page.locator(f"th:text-is('{weekday}')"))
    return row.locator("td").nth(hour).inner_text()


def test_analytics_heatmap_top_lists_and_window_picker(page, live_server, listening_history):
    problems = watch_console(page)
    sign_in(page, "alice", "pw-alice-123")
    page.click("nav >> text=Analytics")
    page.click("#window-picker >> text=30 days")
    assert page.text_content("#total-listens") == "5"
    assert _cell(page, "Fri", 21) == "3"
    assert _cell(page, "Sun", 9) == "2"
    assert _cell(page, "Mon", 3) == ""  # bob's plays are not alice's
    artists = page.locator("#top-artists .bar-label").all_inner_texts()
    assert artists == ["Radiohead", "Massive Attack"]
    assert page.locator("#top-artists .bar-value").all_inner_texts() == ["3 · 60.0%", "2 · 40.0%"]
    screenshot(page, "analytics-30-days")
    page.click("#window-picker >> text=365 days")
    page.wait_for_url("**/analytics/?days=365")
    assert page.text_content("#total-listens") == "7"
    assert _cell(page, "Fri", 21) == "5"
    screenshot(page, "analytics-365-days")
    assert csp_violations(problems) == []


def test_a_token_from_the_assistants_page_calls_mcp(page, live_server, listening_history):
    import asyncio
    import threading

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    problems = watch_console(page)
    sign_in(page, "alice", "pw-alice-123")
    page.click("nav >> text=Assistants")
    page.fill("input[name=name]", "Claude Code")
    page.click("#token-form button[type=submit]")
    token = page.input_value("#token-value")
    assert token.startswith("shk_")
    assert token in page.input_value("#cursor-config")
    screenshot(page, "assistants-token-once")
    page.reload()
    assert page.locator("#token-value").count() == 0
    assert "Claude Code" in page.text_content("#token-list")

    results = {}

    def call() -> None:
        async def main() -> None:
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
            async with (
                http,
                Client(
                    streamable_http_client(f"{live_server.url}/mcp", http_client=http)
                ) as client,
            ):
                results["top"] = await client.call_tool("history_top_artists", {"days": 30})

        asyncio.run(main())

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(60)
    top = results["top"].structured_content
    assert [(a["name"], a["listens"]) for a in top["artists"]] == [
        ("Radiohead", 3),
        ("Massive Attack", 2),
    ]
    screenshot(page, "assistants")
    assert csp_violations(problems) == []


def test_admin_pages_pass_the_csp(browser, live_server, listening_history, admin_user):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    problems = watch_console(page)
    sign_in(page, "admin", "password")
    for path, name in [
        ("/admin/", "admin-overview"),
        (f"/admin/accounts/user/{listening_history.pk}/change/", "admin-user"),
        (f"/admin/accounts/user/{listening_history.pk}/analytics/?days=30", "admin-analytics"),
        ("/admin/history/logevent/", "admin-logs"),
        ("/admin/history/logevent/purge/", "admin-logs-purge"),
        ("/admin/history/play/", "admin-plays"),
    ]:
        response = page.goto(path)
        assert response.status == 200, path
        screenshot(page, name)
    assert page.locator("#overview").count() == 0  # the last page is not the index
    page.goto("/admin/")
    assert "Users (3)" in page.text_content("#overview-users")
    assert csp_violations(problems) == []
    context.close()


def test_the_periodic_task_form_says_the_crontab_in_words_under_the_csp(
    browser, live_server, admin_user
):
    from django_celery_beat.models import CrontabSchedule

    schedule = CrontabSchedule.objects.create(minute="0", hour="4")
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    problems = watch_console(page)
    sign_in(page, "admin", "password")
    page.goto("/admin/django_celery_beat/periodictask/add/")
    page.select_option("#id_crontab", str(schedule.pk))
    help_text = page.text_content(".field-crontab .help")
    assert "Translation: At 04:00" in help_text, help_text
    assert csp_violations(problems) == []
    context.close()


def test_the_api_docs_render_from_our_own_files_under_the_csp(page, live_server, user):
    problems = watch_console(page)
    requests_seen: list[str] = []
    page.on("request", lambda request: requests_seen.append(request.url))
    sign_in(page, "alice", "pw-alice-123")
    page.goto("/api/docs/")
    page.wait_for_selector("text=history_top_artists", timeout=20_000)
    screenshot(page, "api-docs")
    assert all(url.startswith(live_server.url) for url in requests_seen), requests_seen
    assert csp_violations(problems) == []


@pytest.mark.integration
def test_a_new_user_signs_up_imports_an_export_and_sees_it(
    page, live_server, celery_worker, settings, tmp_path
):
    """The whole first visit, with a real Celery worker: sign up locally, upload an export made
    by make_demo_export, watch the import finish, then find its plays on the dashboard and the
    analytics page, with no CSP violation on the way."""
    from apps.history import selectors
    from apps.imports.demo import write_demo_export
    from apps.imports.models import ImportJob

    settings.MEDIA_ROOT = tmp_path
    export = tmp_path / "my_spotify_data.zip"
    info = write_demo_export(export, records=3_000, seed=11)
    problems = watch_console(page)

    page.goto("/accounts/signup/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password1]", "a long pass phrase 42")
    page.fill("input[name=password2]", "a long pass phrase 42")
    page.click("form[action='/accounts/signup/'] button[type=submit]")
    page.wait_for_selector("text=Sign out (carol)")

    page.click("nav >> text=Imports")
    assert page.is_visible("#export-help summary")
    page.set_input_files("input[type=file]", str(export))
    page.click("#upload-form button[type=submit]")
    counts = page.wait_for_selector(".job-counts", timeout=120_000)
    job = ImportJob.objects.get(user__username="carol")
    assert job.status == "succeeded", job.error
    assert counts.inner_text().startswith(f"{info['records']} records: {job.plays_added} plays")
    screenshot(page, "first-visit-imports")

    page.click("nav >> text=Dashboard")
    assert page.text_content("#plays-total") == str(job.plays_added)
    screenshot(page, "first-visit-dashboard")

    page.click("nav >> text=Analytics")
    page.click("#window-picker >> text=All time")
    carol = User.objects.get(username="carol")
    summary = selectors.taste_summary(
        user=carol, window=selectors.resolve_window(user=carol, days=0)
    )
    assert page.text_content("#total-listens") == str(summary.totals.listens)
    assert page.locator("#top-artists .bar-label").first.inner_text() == summary.top_artists[0].name
    screenshot(page, "first-visit-analytics")
    assert csp_violations(problems) == []
