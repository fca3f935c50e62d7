# ProductPulse: one image for the worker, the collector and the CLI (`IMAGE worker`, `IMAGE collector`,
# `IMAGE metrics query ...`). Build on this machine with deploy/container/build.sh (it makes the base).
#
# BASE is any Debian-like image with python3 >= 3.11 and its venv module: python:3.11-slim for users,
# localhost/pulse-base:bookworm (made by build.sh from Debian's packages) where no registry is reachable.
# Every stage uses the same base, so the venv's interpreter links resolve in the runtime stage.
ARG BASE=python:3.11-slim

# Stage 1: the dependencies, pinned (exactly the versions the tests ran), in a venv. pip compiles them: the
# non-root user could not write .pyc files into /opt/pulse at run time. This layer changes with the lock only.
FROM ${BASE} AS deps
# PIP_CERT: the OS bundle (build.sh mounts the host's over it, for this machine's proxy); not in the final stage.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/pulse
COPY deploy/container/requirements.lock /tmp/requirements.lock
RUN /opt/pulse/bin/pip install -r /tmp/requirements.lock

# Stage 2: ProductPulse itself as a wheel (small: a code change rebuilds only this and the last layer).
FROM deps AS wheel
COPY pyproject.toml README.md /src/
COPY pipeline /src/pipeline
COPY consumers /src/consumers
COPY alerts /src/alerts
COPY dashboards /src/dashboards
RUN /opt/pulse/bin/pip wheel --no-deps --wheel-dir /wheels /src

# Stage 3: the runtime - the base, the venv, the wheel; no compiler, no sources, no pip cache.
FROM ${BASE}
# A fixed numeric uid (Kubernetes' runAsNonRoot can only verify a number); no useradd needed in a minimal base.
RUN echo "pulse:x:10001:10001:ProductPulse:/data:/usr/sbin/nologin" >> /etc/passwd \
 && echo "pulse:x:10001:" >> /etc/group \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=deps /opt/pulse /opt/pulse
COPY --from=wheel /wheels /tmp/wheels
# --no-deps --no-index: everything it needs is pinned above (a missing pin fails `pulse --help` in the image test).
RUN PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/pulse/bin/pip install --no-cache-dir --no-deps --no-index /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
ENV PATH=/opt/pulse/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PULSE_DATA_DIR=/data
WORKDIR /data
VOLUME /data
USER 10001:10001
# 6066 the worker's web server (/healthz, /readyz, dashboards, /api), 9464 its /metrics, 8088 the collector.
EXPOSE 6066 9464 8088
# Healthy when the worker's /healthz or the collector's /healthz answers 200 (whichever this container runs).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "-c", "import os, urllib.request as u\nfor port in (os.environ.get('PULSE_WEB_PORT', '6066'), os.environ.get('PULSE_COLLECTOR_PORT', '8088')):\n    try:\n        u.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)\n        raise SystemExit(0)\n    except OSError:\n        pass\nraise SystemExit(1)"]
ENTRYPOINT ["pulse"]
CMD ["--help"]
