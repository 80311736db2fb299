from django.urls import path

from apps.imports import views

app_name = "imports"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:job_id>/status", views.status, name="status"),
]
