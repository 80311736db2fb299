import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What start-up made (modules, settings, URL patterns, models) lives as long as the process.
# Freezing it keeps the garbage collector from walking it on each full collection: measured in
# `manage.py bench tools`, that was a 30-40 ms pause every few calls of an all-time tool.
gc.freeze()
