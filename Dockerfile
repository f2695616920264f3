# syntax=docker/dockerfile:1
# Steward's image: `steward` is the entrypoint; the default command serves the HTTP API.
#   docker build -t steward .
#   docker run --rm steward migrate            # with STEWARD_DATABASE_URL set
#   docker run --rm -p 8000:8000 steward       # steward serve --host 0.0.0.0 --port 8000
#   docker run --rm steward worker             # executes runs
# Everything Python comes from requirements.lock (hashes checked, wheels only), so a rebuild
# installs the same files. scripts/dockerfile_steps_check.py runs these steps outside Docker;
# docs/deploy.md says what sandboxes need from the container runtime.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment under /opt/steward, nothing else survives this stage ------
FROM ${PYTHON_IMAGE} AS build
ENV VENV=/opt/steward \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock ./
# Wheels only: no compiler is needed, and none is installed in either stage.
RUN python -m venv "$VENV" \
    && "$VENV/bin/pip" install --no-deps --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# Steward itself, built with the locked setuptools (no index, no build isolation), after which
# the build-only tools leave the environment.
RUN "$VENV/bin/pip" install --no-deps --no-build-isolation --no-index . \
    && "$VENV/bin/pip" uninstall -y -q setuptools wheel \
    && "$VENV/bin/steward" --help >/dev/null

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# bubblewrap runs sandboxes (the default backend); Debian's python3 is the interpreter inside
# them (/usr/bin/python3). WITH_GVISOR=true adds runsc for the gVisor backend.
ARG WITH_GVISOR=false
# Versions come from the base image's Debian release; a pin would break on its next security
# update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap python3 \
    && if [ "$WITH_GVISOR" = "true" ]; then apt-get install -y --no-install-recommends runsc; fi \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 steward \
    && useradd --system --uid 10001 --gid steward --home-dir /var/lib/steward \
       --no-create-home --shell /usr/sbin/nologin steward \
    && mkdir -p /var/lib/steward \
    && chown steward:steward /var/lib/steward
COPY --from=build /opt/steward /opt/steward
WORKDIR /app
# The example agents and their configuration: what the image serves unless told otherwise
# (STEWARD_APPS, or an image built FROM this one with the team's own agents).
COPY steward.toml ./
COPY examples ./examples
ENV PATH=/opt/steward/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STEWARD_HOME=/var/lib/steward
USER 10001:10001
EXPOSE 8000
# Ready = the database answers (/readyz); STEWARD_HEALTH_URL moves it with --port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('STEWARD_HEALTH_URL', 'http://127.0.0.1:8000/readyz'), timeout=4)"]
ENTRYPOINT ["steward"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
