from django.urls import path

from apps.accounts import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("analytics/", views.analytics_page, name="analytics"),
    path("assistants/", views.assistants_page, name="assistants"),
    path("assistants/tokens/<int:token_id>/revoke/", views.revoke_token, name="revoke_token"),
    path("assistants/apps/<int:client_id>/revoke/", views.revoke_client, name="revoke_client"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/export.<str:fmt>", views.export_plays, name="export_plays"),
    path("settings/delete/", views.delete_data, name="delete_data"),
    path("collection/poll/", views.poll_now, name="poll_now"),
    path("collection/pause/", views.pause_collection, name="pause_collection"),
    path("collection/resume/", views.resume_collection, name="resume_collection"),
    path("spotify/disconnect/", views.disconnect_spotify, name="disconnect_spotify"),
]
