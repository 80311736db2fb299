from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import transaction

from apps.accounts.models import User
from apps.history.models import Play
from apps.imports.models import ImportJob

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeletedData:
    plays: int
    imports: int
    files: int


def delete_user_data(*, user: User) -> DeletedData:
    """Delete the user and everything that is theirs, in one transaction.

    Plays go first in one statement (the cascade would load them row by row); deleting the user
    then cascades to the Spotify connection and its tokens, sync state, job runs, log lines,
    imports, API tokens and OAuth grants. The uploaded export files are removed once the
    transaction has committed, so a rollback never leaves rows pointing at missing files. The
    shared catalogue (artist, album and track names) is not personal data and stays.
    """
    user_id = user.pk
    with transaction.atomic():
        files = [
            name
            for name in ImportJob.objects.filter(user=user).values_list("file", flat=True)
            if name
        ]
        imports = ImportJob.objects.filter(user=user).count()
        plays, _ = Play.objects.for_user(user).delete()
        user.delete()
        transaction.on_commit(lambda: _delete_files(files, user_id=user_id))
    logger.info(
        "Deleted user #%s with %d plays and %d imports",
        user_id,
        plays,
        imports,
        extra={"store": True},
    )
    return DeletedData(plays=plays, imports=imports, files=len(files))


def _delete_files(names: list[str], *, user_id: int) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("Could not delete the upload %s of deleted user #%s", name, user_id)
