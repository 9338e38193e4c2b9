# One image for the dashboard and the workers. CPU torch by default; for GPUs build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 (or use a CUDA base image).
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
# the login is on: add the first admin before serving (see the README, "Sharing it")
ENV PYTHONUNBUFFERED=1 BML_HOME=/data/bml BML_AUTH=local
WORKDIR /app
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY bml_core bml_core
COPY db db
COPY worker worker
COPY services services
COPY app app
COPY bml_cli bml_cli
COPY examples examples
RUN pip install --no-cache-dir .
# Run as an unprivileged user (no root in the container): it owns only /data (the store,
# run directories, datasets); the code under /app and site-packages stay read-only to it.
RUN groupadd --system --gid 10001 bml \
    && useradd --system --uid 10001 --gid bml --home-dir /data/bml --no-create-home --shell /usr/sbin/nologin bml \
    && mkdir -p /data/bml /data/runs /data/datasets \
    && chown -R bml:bml /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8501
# `bml up` (embedded), or override: `bml worker --gpus 0`, `bml dashboard --host 0.0.0.0 --auth`.
# First: docker run --rm -it -v bml-data:/data IMAGE sh -c "bml db upgrade && bml user add NAME --role admin"
CMD ["bml", "up", "--host", "0.0.0.0", "--auth"]
