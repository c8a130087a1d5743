# The Nudge image: one image for the worker, the gateway, `nudge setup` and the simulator (the
# compose file picks the command). `docker build -t nudge:local .`
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY nudge ./nudge
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY simulator ./simulator
COPY bench ./bench
RUN pip install . && useradd --system --uid 10001 --home-dir /var/lib/nudge nudge \
    && mkdir -p /var/lib/nudge && chown nudge /var/lib/nudge
USER nudge
ENV NUDGE_STATE_DIR=/var/lib/nudge
ENTRYPOINT ["nudge"]
CMD ["--help"]
