# One image for every kabin process: `kabin operator` (with its admission
# webhooks), `kabin gateway` (Skaha's REST API and the dashboard) and, in session
# pods, `kabin agent`.
FROM node:20-slim AS assets
WORKDIR /assets
COPY operator/kabin/gateway/dashboard/package.json operator/kabin/gateway/dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY operator ./operator
COPY --from=assets /assets/node_modules/htmx.org/dist/htmx.min.js \
     /assets/node_modules/htmx-ext-sse/dist/sse.min.js \
     ./operator/kabin/gateway/dashboard/static/vendor/
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint requirements.lock .

FROM python:3.11-slim
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin kabin
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
ENTRYPOINT ["kabin"]
CMD ["operator"]
