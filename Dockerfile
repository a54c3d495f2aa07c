# syntax=docker/dockerfile:1
#
# titiler-otsu: `docker build -t titiler-otsu . && docker run -p 8000:8000 titiler-otsu`
# then open http://localhost:8000/ (serves the bundled demo scene; pass paths/URLs to
# serve your own COGs, e.g. `docker run -p 8000:8000 -v /data:/data:ro titiler-otsu
# titiler-otsu serve /data/x.tif --host 0.0.0.0`). rasterio wheels bundle GDAL: no system GDAL.

# ---- build: turn the source tree into a wheel ---------------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime ------------------------------------------------------------------------
FROM python:3.11-slim

# XDG_CACHE_HOME: platformdirs puts the demo scene under $XDG_CACHE_HOME/titiler-otsu,
# which must be writable by the non-root user. GDAL_*/VSI_*: the usual settings for
# reading COGs over HTTP.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_CACHE_HOME=/home/app/.cache \
    GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR \
    GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES \
    VSI_CACHE=TRUE

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /home/app/.cache \
    && chown -R app:app /home/app

COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels

USER app
WORKDIR /home/app

# Generate the demo scene at build time (a few seconds) so the first start is instant;
# it is regenerated on start if the cache directory is replaced by an empty volume.
RUN python -c "from titiler_otsu.demo import ensure_demo_scene; print(ensure_demo_scene())"

EXPOSE 8000

# No curl in slim images: probe with the standard library (urlopen raises on HTTP errors).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["titiler-otsu", "serve", "--host", "0.0.0.0", "--port", "8000"]
