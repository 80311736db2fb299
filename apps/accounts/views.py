"""The site's pages for signed-in people. Every read goes through the viewer's own querysets."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts import analytics, assistants, export, selectors, services
from apps.accounts.forms import DeleteDataForm, TimezoneForm, TokenForm
from apps.accounts.models import User
from apps.accounts.spotify import SpotifyError
from apps.history import collection
from apps.history import services as history_services
from apps.history.models import Play
from apps.imports.models import ImportJob
from apps.mcp import selectors as token_selectors
from apps.mcp import services as token_services

NEW_TOKEN_KEY = "assistants:new-token"  # noqa: S105 (a session key)


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    context = {
        "status": selectors.collection_status(user=user),
        "history": analytics.history(user=user),
    }
    return render(request, "accounts/dashboard.html", context)


@login_required
@require_GET
def analytics_page(request: HttpRequest) -> HttpResponse:
    context = analytics.page_context(request.GET, user=_user(request))
    return render(request, "analytics/analytics.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def assistants_page(request: HttpRequest) -> HttpResponse:
    """Tokens and the settings each assistant needs. A new token's value goes through the
    session to the page the POST redirects to, which takes it out again: it is shown once, a
    reload neither shows it again nor creates a second token, and the page is not cached."""
    user = _user(request)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, value = token_services.create_token(user=user, name=form.cleaned_data["name"])
        except token_services.TokenError as exc:
            form.add_error("name", str(exc))
        else:
            request.session[NEW_TOKEN_KEY] = {"name": token.name, "value": value}
            return redirect("assistants")
    new_token = request.session.pop(NEW_TOKEN_KEY, None)
    token_value = new_token["value"] if new_token else None
    context = {
        "form": form,
        "new_token": new_token,
        "tokens": token_selectors.user_tokens(user=user),
        "clients": token_selectors.authorized_clients(user=user),
        "urls": assistants.urls(),
        "instructions": assistants.GPT_INSTRUCTIONS,
        "prompts": assistants.EXAMPLE_PROMPTS,
        "claude_code": assistants.claude_code_command(token_value),
        "cursor": assistants.cursor_config(token_value),
    }
    response = render(request, "accounts/assistants.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    if token_services.revoke_token(user=_user(request), token_id=token_id):
        messages.success(request, "Token revoked: assistants using it can no longer call.")
    else:
        messages.error(request, "No such active token.")
    return redirect("assistants")


@login_required
@require_POST
def revoke_client(request: HttpRequest, client_id: int) -> HttpResponse:
    revoked = token_services.revoke_oauth_client(user=_user(request), client_id=client_id)
    if revoked:
        messages.success(request, "Access revoked: that assistant must be authorised again.")
    else:
        messages.error(request, "That assistant holds no access to revoke.")
    return redirect("assistants")


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Redirect to the page the button was on (dashboard or settings)."""
    target = request.POST.get("next", "")
    return redirect(target if target in ("dashboard", "settings") else default)


@login_required
@require_POST
def poll_now(request: HttpRequest) -> HttpResponse:
    try:
        collection.request_poll(user=_user(request))
    except SpotifyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "A poll is queued: new plays appear here in a minute.")
    return _back(request, "dashboard")


@login_required
@require_POST
def pause_collection(request: HttpRequest) -> HttpResponse:
    try:
        services.pause_collection(user=_user(request))
    except SpotifyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Collection is paused. Nothing is polled until you resume it.")
    return _back(request, "dashboard")


@login_required
@require_POST
def resume_collection(request: HttpRequest) -> HttpResponse:
    try:
        services.resume_collection(user=_user(request))
    except SpotifyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Collection resumed; a poll is queued.")
    return _back(request, "dashboard")


@login_required
@require_POST
def disconnect_spotify(request: HttpRequest) -> HttpResponse:
    services.disconnect_spotify(user=_user(request))
    messages.success(
        request,
        "Spotify is disconnected and its tokens are deleted. Your plays stay; connect again to "
        "resume collecting.",
    )
    return _back(request, "settings")


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = TimezoneForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        form.save()
        if "timezone" in form.changed_data:
            history_services.request_best_days(user_id=user.pk)
        messages.success(request, f"Time zone saved: {user.timezone}.")
        return redirect("settings")
    status = selectors.collection_status(user=user, recent=0)
    return render(request, "accounts/settings.html", {"form": form, "status": status})


@login_required
@require_GET
def export_plays(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    if fmt not in export.FORMATS:
        raise Http404("Unknown export format")
    user = _user(request)
    response = StreamingHttpResponse(
        export.export_lines(user=user, fmt=fmt), content_type=export.FORMATS[fmt]
    )
    stamp = timezone.now().strftime("%Y%m%d")
    filename = f"listening-history-{user.username}-{stamp}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete_data(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = DeleteDataForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        deleted = services.delete_user_data(user=user)
        logout(request)
        messages.success(
            request,
            f"Your account is deleted: {deleted.plays} plays and {deleted.imports} imports are "
            "gone, with every token and uploaded file.",
        )
        return redirect("home")
    counts = {
        "plays": Play.objects.for_user(user).count(),
        "imports": ImportJob.objects.filter(user=user).count(),
    }
    return render(request, "accounts/delete_data.html", {"form": form, "counts": counts})
