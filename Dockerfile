# Production image: migrations, then the API with the dialer inside.
# Configure with VOICEBOT_DATABASE_URL (postgresql+asyncpg://…), VOICEBOT_PUBLIC_BASE_URL and
# VOICEBOT_TWILIO_* (see README). Run more dialers with `voicebot dialer` from the same image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VOICEBOT_ENVIRONMENT=production \
    VOICEBOT_HOST=0.0.0.0 \
    VOICEBOT_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN pip install '.[speech]' \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin voicebot
ENV VOICEBOT_MIGRATIONS_DIR=/app

USER voicebot
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)" || exit 1
CMD ["sh", "-c", "voicebot db upgrade && exec voicebot serve --host 0.0.0.0 --port 8000"]
