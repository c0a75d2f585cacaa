# syntax=docker/dockerfile:1
# The pseudonymizer image: the worker by default; docker-compose.yml also runs `keys` and `generate` from it.
# The Python minor version is the oldest that pyproject.toml supports (tests/test_compose.py checks it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid: named volumes keep the owner they were created with, so it must not change between builds.
RUN groupadd --system --gid 10001 pseudo \
 && useradd --system --uid 10001 --gid pseudo --home-dir /app --no-create-home --shell /usr/sbin/nologin pseudo

WORKDIR /app
# .dockerignore keeps keys, .env files, GeoIP databases, virtualenvs and broker state out of the context.
COPY . /app

# Every dependency has a binary wheel for this platform, so the slim image needs no compiler.
# The mount points are created here, owned by the app user and private (0700), because a fresh named
# volume copies its owner and mode from the image: /keys holds the keyring, /data the worker's state.
RUN pip install /app \
 && rm -rf /app/build /app/*.egg-info \
 && mkdir -p /keys /data /geo \
 && chown pseudo:pseudo /keys /data \
 && chmod 0700 /keys /data

USER pseudo

CMD ["pseudonymizer", "worker"]
