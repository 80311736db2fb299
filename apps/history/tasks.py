import logging
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import Retry
from django.conf import settings

from apps.accounts import spotify
from apps.accounts.models import User
from apps.accounts.spotify import SpotifyRateLimited, SpotifyUnavailable
from apps.history import collection, services, totals
from apps.history.models import JobRun

logger = logging.getLogger(__name__)

# A poll that hit a 429 or a Spotify outage is retried this many times, after the pause.
SPOTIFY_RETRIES = 3


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def purge_old_log_events() -> int:
    deleted = services.purge_log_events()
    logger.info("Purged %d old log events", deleted)
    return deleted


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def refresh_best_days(user_id: int) -> int:
    """Count the user's stale biggest days (see apps.history.totals), so no question waits."""
    return totals.refresh_best_days(user_id)


@shared_task(bind=True, acks_late=True, time_limit=300, soft_time_limit=270)
def poll_user(self, user_id: int) -> str | None:
    """Poll one user's recently played list. Retries after a 429 pause or a Spotify outage;
    a daily quota or an account problem waits for the next scheduled poll."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return None
    try:
        run = collection.poll_user(user=user, task_id=self.request.id or "")
    except (SpotifyRateLimited, SpotifyUnavailable) as exc:
        quota = isinstance(exc, SpotifyRateLimited) and exc.quota
        if quota or self.request.retries >= SPOTIFY_RETRIES:
            return "failed"
        countdown = exc.retry_after + 1 if isinstance(exc, SpotifyRateLimited) else 30
        raise self.retry(countdown=countdown, exc=exc) from None
    except Retry:
        raise
    except Exception:
        logger.exception("Poll of user %s failed", user_id, extra={"user": user_id})
        return "failed"
    totals.refresh_best_days(user.pk)  # the tracks just played; see apps.history.totals
    return run.status


def _run_once(
    service: Callable[..., JobRun], what: str, user_id: int, task_id: str | None
) -> str | None:
    """Run a collection service for a user once: a failure is on its JobRun and in the log,
    and waits for the next time the task is queued."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return None
    try:
        run = service(user=user, task_id=task_id or "")
    except Exception:
        logger.exception("%s of user %s failed", what, user_id, extra={"user": user_id})
        return "failed"
    totals.refresh_best_days(user.pk)
    return run.status


@shared_task(bind=True, acks_late=True, time_limit=1800, soft_time_limit=1740)
def initial_sync(self, user_id: int) -> str | None:
    """Page back through one user's recently played list; the service records why it stopped."""
    return _run_once(collection.initial_sync, "Initial sync", user_id, self.request.id)


@shared_task(bind=True, acks_late=True, time_limit=1800, soft_time_limit=1740)
def resolve_local_tracks(self, user_id: int) -> str | None:
    """Search Spotify for the real track of one user's local songs; a 429 or an outage ends
    the run, and the next hour's goes on."""
    return _run_once(
        collection.resolve_local_tracks, "Local track search", user_id, self.request.id
    )


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def queue_local_track_searches() -> int:
    """Beat's hourly fan-out: one resolve_local_tracks task per collecting user with local
    songs not searched for yet. Nothing while Spotify calls are paused or the setting is 0."""
    if settings.RESOLVE_SEARCHES_PER_RUN <= 0 or spotify.rate_limit_pause() is not None:
        return 0
    user_ids = collection.users_with_local_tracks()
    for user_id in user_ids:
        resolve_local_tracks.delay(user_id)
    return len(user_ids)


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def queue_due_polls() -> int:
    """Beat's fan-out: one poll_user task per active, unpaused, connected user that is due."""
    return collection.queue_due_polls()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=270)
def warn_expiring_tokens() -> int:
    """Mark accounts whose Spotify authorization ends within 30 or 7 days, logging each once."""
    from apps.accounts.services import warn_expiring_tokens

    return warn_expiring_tokens()
