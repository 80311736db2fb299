"""The /imports/ page: upload an export, follow its progress, read its counts."""

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET

from apps.imports import services
from apps.imports.forms import UploadForm
from apps.imports.models import ImportJob
from apps.imports.parser import ExportError


@csrf_exempt  # only to look at the size before anything reads the body; see _index
@login_required
def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # Refuse an oversized upload from its Content-Length, before the body is read. Refusing
        # changes nothing, so it needs no CSRF check; everything else goes through one.
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > services.max_upload_bytes() + 64 * 1024:
            return _render(request, UploadForm(), status=413, errors=[services.too_big_message()])
    return _index(request)


@csrf_protect
def _index(request: HttpRequest) -> HttpResponse:
    assert request.user.is_authenticated
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                with transaction.atomic():
                    job = services.create_upload_job(
                        user=request.user, upload=form.cleaned_data["file"]
                    )
            except ExportError as exc:
                form.add_error("file", str(exc))
            else:
                return redirect(f"{request.path}?job={job.pk}")
        return _render(request, form, status=400)
    return _render(request, UploadForm())


def _render(
    request: HttpRequest, form: UploadForm, status: int = 200, errors: list[str] | None = None
) -> HttpResponse:
    assert request.user.is_authenticated
    jobs = ImportJob.objects.filter(user=request.user).order_by("-created_at")[:50]
    return render(
        request,
        "imports/index.html",
        {
            "form": form,
            "errors": errors or [],
            "jobs": jobs,
            "max_bytes": services.max_upload_bytes(),
            "max_mb": services.max_upload_bytes() // (1024 * 1024),
        },
        status=status,
    )


@require_GET
@login_required
def status(request: HttpRequest, job_id: int) -> JsonResponse:
    job = get_object_or_404(ImportJob, pk=job_id, user=request.user)
    return JsonResponse(services.job_summary(job))
