from django.urls import path

from apps.accounts import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/export.<str:fmt>", views.export_plays, name="export_plays"),
    path("settings/delete/", views.delete_data, name="delete_data"),
]
