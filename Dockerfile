FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VAR_DIR=/data
WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/base.txt
COPY . .
RUN useradd --create-home app && mkdir -p /data && chown app /data
USER app
# SECRET_KEY is only needed to load settings; the real one comes from the environment at run time.
RUN SECRET_KEY=build-only TOKEN_ENCRYPTION_KEY= python manage.py collectstatic --no-input
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
