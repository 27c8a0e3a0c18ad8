# feedworker as a container service: `docker run -v ./config:/app/config:ro -v ./feeds:/app/feeds ...`
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FEEDWORKER_CONFIG=/app/config

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin feedworker

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install . && rm -rf /root/.cache

# The shipped example config; mount your own folder over it (read-only is fine).
COPY config ./config
RUN mkdir -p /app/feeds /app/state && chown feedworker:feedworker /app/feeds /app/state

USER feedworker
# Mount folders, not single files: feeds are replaced atomically with rename(), which fails
# with EBUSY on a bind-mounted file.
VOLUME ["/app/config", "/app/feeds", "/app/state"]

CMD ["feedworker", "run"]
