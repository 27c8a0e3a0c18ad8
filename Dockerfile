# feedworker as a container service, serving its feeds on port 8080:
#   docker run -p 8080:8080 -v ./config:/app/config:ro -v ./feeds:/app/feeds -v ./state:/app/state feedworker
# Every [worker] setting can be overridden with FEEDWORKER_<SETTING>, e.g. -e FEEDWORKER_LOG_LEVEL=DEBUG;
# the command passes no flag that would override one (flags win over settings).
# tests/test_docker_steps.py performs this file's install and start steps in a fresh virtualenv.
#
# Two targets: the default image (`docker build .`), and one with headless Chromium for sources
# with render = "browser" (`docker build --target browser .`, about 250 MB more; see
# docs/rendering.md). Both run the same feedworker.
#
# Site rules (docs/site-rules.md), off by default: `docker build --build-arg SITE_RULES_REF=HEAD .`
# fetches FiveFilters' ftr-site-config (a shallow fetch of that ref: HEAD for its default branch,
# a branch, a tag or a full commit hash) into /app/site-rules and points site_rules at it
# (FEEDWORKER_SITE_RULES). SITE_RULES_REPO names another copy of the repository.
ARG SITE_RULES_REF=""
ARG SITE_RULES_REPO=https://github.com/fivefilters/ftr-site-config.git

# The rules are fetched in a stage of their own, so git never reaches the image; without
# SITE_RULES_REF it does nothing, and the folder copied below is empty.
FROM python:3.12-slim AS site-rules
ARG SITE_RULES_REF
ARG SITE_RULES_REPO
WORKDIR /site-rules
RUN if [ -n "$SITE_RULES_REF" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git ca-certificates \
        && git init -q \
        && git fetch -q --depth 1 "$SITE_RULES_REPO" "$SITE_RULES_REF" \
        && git checkout -q FETCH_HEAD \
        && git rev-parse HEAD > COMMIT \
        && rm -rf .git; \
    fi


FROM python:3.12-slim AS base
ARG SITE_RULES_REF

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FEEDWORKER_CONFIG=/app/config \
    FEEDWORKER_SERVE_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin feedworker

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install .

# The shipped example config; mount your own folder over it (read-only is fine: feedworker only
# reads it, and picks up edits made on the host within a few seconds).
COPY config ./config
RUN mkdir -p /app/feeds /app/state && chown feedworker:feedworker /app/feeds /app/state

# The site rules fetched above (an empty folder unless SITE_RULES_REF was given), read-only for
# the worker. An empty FEEDWORKER_SITE_RULES counts as unset; set, it wins over site_rules in
# feedworker.toml, so a folder of your own goes in the variable too, first:
#   -e FEEDWORKER_SITE_RULES=/app/config/site-rules,/app/site-rules
COPY --from=site-rules /site-rules /app/site-rules
ENV FEEDWORKER_SITE_RULES=${SITE_RULES_REF:+/app/site-rules}

USER feedworker
# Mount folders, not single files: feeds are replaced atomically with rename(), which fails
# with EBUSY on a bind-mounted file.
VOLUME ["/app/feeds", "/app/state"]
EXPOSE 8080

# 503 once the scheduler has stopped; no curl in slim images, so Python's urllib asks, on the
# port FEEDWORKER_SERVE_PORT names (set the port that way in a container, not in the file).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('FEEDWORKER_SERVE_PORT') or '8080'; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# SIGTERM (docker stop) lets runs in progress finish for up to shutdown_grace seconds (30 s;
# FEEDWORKER_SHUTDOWN_GRACE); give docker stop longer (docker stop -t 40, or
# stop_grace_period: 40s in compose). Where it listens: serve_host (0.0.0.0 above) and
# serve_port (8080), from the environment or feedworker.toml.
STOPSIGNAL SIGTERM
CMD ["feedworker", "run", "--serve"]


# The image with a browser: Debian's chromium-headless-shell, from the distribution's packages
# (nothing downloaded at run time). Chromium's own sandbox needs user namespaces, which Docker's
# default seccomp profile does not allow a non-root user; the container is the boundary here,
# and Chromium never reaches the network itself (feedworker answers every request it makes).
FROM base AS browser
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium-headless-shell \
    && rm -rf /var/lib/apt/lists/*
ENV FEEDWORKER_RENDER_SANDBOX=false
USER feedworker


# The default target (last): the image without a browser.
FROM base AS plain
