from django.apps import AppConfig


class MusicConfig(AppConfig):
    name = "apps.music"
    label = "music"
    verbose_name = "Music catalogue"
