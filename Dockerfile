FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sphere sphere
COPY communities communities
COPY chat chat
COPY fanout fanout
COPY web web
COPY manage.py ./
# /app/var/static exists in the image, owned by sphere: Docker seeds an empty named volume
# mounted there (compose's `static`) with the image directory's owner, where a missing
# directory would be created root-owned and collectstatic, run as sphere, could not write it.
RUN pip install --no-cache-dir . && useradd --system sphere && mkdir -p /app/var/static \
    && chown -R sphere /app/var
USER sphere
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "sphere.asgi:application"]
