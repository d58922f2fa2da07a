# One image for every kabin process: `kabin operator` (with its admission
# webhooks), `kabin gateway` (Skaha's REST API and the dashboard) and, in session
# pods, `kabin agent`.
#
# The bases are arguments: Docker Hub's by default; `make image` builds it from bases
# made of Debian packages (hack/image.sh), where no registry can be reached. Behind a
# TLS-inspecting proxy, give its CA bundle as the build secret `ca-bundle`: npm and pip
# use it while building, and it is not left in any layer.
ARG NODE_IMAGE=node:20-slim
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${NODE_IMAGE} AS assets
WORKDIR /assets
COPY operator/kabin/gateway/dashboard/package.json operator/kabin/gateway/dashboard/package-lock.json ./
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle; fi \
 && npm ci --no-audit --no-fund

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY operator ./operator
COPY --from=assets /assets/node_modules/htmx.org/dist/htmx.min.js \
     /assets/node_modules/htmx-ext-sse/dist/sse.min.js \
     ./operator/kabin/gateway/dashboard/static/vendor/
# Every dependency at its pinned version (requirements.lock), into a virtual
# environment that the final stage copies whole.
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && python3 -m venv /opt/kabin \
 && /opt/kabin/bin/pip install --no-cache-dir --constraint requirements.lock .

FROM ${PYTHON_IMAGE}
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin kabin
COPY --from=build /opt/kabin /opt/kabin
ENV PATH=/opt/kabin/bin:$PATH PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
ENTRYPOINT ["kabin"]
CMD ["operator"]
