"""Create the admin account from DJANGO_SUPERUSER_USERNAME/PASSWORD, or say how to make one."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

User = get_user_model()
username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
if username and password:
    if User.objects.filter(username=username).exists():
        print(f"Admin account {username!r} already exists.")
    else:
        User.objects.create_superuser(username=username, password=password, email="")
        print(f"Created admin account {username!r}.")
elif not User.objects.filter(is_superuser=True).exists():
    print(
        "No admin account yet. Create one with `.venv/bin/python manage.py createsuperuser`, "
        "or set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD before `make run`."
    )
