# syntax=docker/dockerfile:1
# The pseudonymizer image: the worker by default; docker-compose.yml also runs `keys` and `generate` from it.
# The Python minor version is the oldest that pyproject.toml supports (tests/test_compose.py checks it).
# Pinned by tag and by the digest of its multi-architecture index, so a rebuild gets the same base: to move on,
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and replace both.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid: named volumes keep the owner they were created with, so it must not change between builds.
RUN groupadd --system --gid 10001 pseudo \
 && useradd --system --uid 10001 --gid pseudo --home-dir /app --no-create-home --shell /usr/sbin/nologin pseudo

WORKDIR /app
# Dependencies first, from the lock only: every package (setuptools, the build backend, included) pinned with its
# hashes, so a changed or substituted file on the index fails the build. Their own layer, reused while only the
# source changes. Every one has a binary wheel for this platform, so the slim image needs no compiler.
COPY requirements.lock /app/requirements.lock
RUN pip install --require-hashes -r /app/requirements.lock

# .dockerignore keeps keys, .env files, GeoIP databases, virtualenvs and broker state out of the context.
COPY . /app

# The project itself, without dependencies (all installed above) and with the locked setuptools rather than
# one fetched, unpinned, into an isolated build environment.
# The mount points are created here, owned by the app user and private (0700), because a fresh named
# volume copies its owner and mode from the image: /keys holds the keyring, /data the worker's state.
RUN pip install --no-deps --no-build-isolation /app \
 && rm -rf /app/build /app/*.egg-info \
 && mkdir -p /keys /data /geo \
 && chown pseudo:pseudo /keys /data \
 && chmod 0700 /keys /data

USER pseudo

CMD ["pseudonymizer", "worker"]
