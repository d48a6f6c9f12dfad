# One image for every role; the command picks it (triage worker -Q ..., triage serve, ...).
# CPU by default; `--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124` for CUDA.
FROM python:3.11-slim
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRIAGE_DATA_DIR=/data
WORKDIR /app
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY producer producer
COPY models models
COPY worker worker
COPY examples examples
RUN pip install --no-cache-dir -e .
RUN useradd --create-home triage && mkdir -p /data && chown triage /data
USER triage
VOLUME ["/data"]
# `triage serve` (the api service); workers listen on nothing.
EXPOSE 8000
ENTRYPOINT ["triage"]
CMD ["--help"]
