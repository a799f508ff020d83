# Slim, non-root image running `tenantgate serve`. Build: docker build -t tenantgate .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY api ./api
COPY auth ./auth
COPY config ./config
COPY policies ./policies
COPY storage ./storage
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TENANTGATE_ENV=production
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tenantgate
COPY --from=build /opt/venv /opt/venv
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["tenantgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
