# syntax=docker/dockerfile:1
# l5d-twisted: the mesh proxy, the sample apps and the smoke checks in one small image.
# Two stages: wheels are built where compilers exist, the runtime stage only installs them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# httptools and the TLS stack may need compiling on platforms without binary wheels.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.py pyproject.toml README.md ./
COPY l5d_twisted ./l5d_twisted
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="l5d-twisted" \
      org.opencontainers.image.description="A linkerd 1.x style service mesh proxy on the Twisted reactor" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Only the wheels cross over: no compiler, no source tree, no pip cache in the final image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels l5d-twisted
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 l5d \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin l5d
USER 10001:10001
WORKDIR /tmp
EXPOSE 4140 4141 9990
ENTRYPOINT ["l5d-twisted"]
CMD ["run", "/config/linkerd.yaml"]
