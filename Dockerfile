# syntax=docker/dockerfile:1
# Default image (JSON Lines, small):
#   docker build -t pipeline-service .
#   docker run -p 8000:8000 -v pipeline-data:/data pipeline-service
# Oracle image (adds Oracle Instant Client Basic Light):
#   docker build --target oracle -t pipeline-service:oracle .
#   docker run -p 8000:8000 -e ORACLE_DSN=db:1521/FREEPDB1 -e ORACLE_USER=app \
#       -e ORACLE_PASSWORD=... pipeline-service:oracle

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sql ./sql
# Cargo.toml declares the Criterion bench; its source must exist to build.
COPY benches ./benches
RUN cargo build --release --locked --bin pipeline-service \
    && strip target/release/pipeline-service

FROM debian:bookworm-slim AS base
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin pipeline \
    && mkdir -p /data && chown pipeline /data
COPY --from=build /src/target/release/pipeline-service /usr/local/bin/pipeline-service
COPY sample_record.json /usr/share/pipeline-service/sample_record.json
COPY sql /usr/share/pipeline-service/sql
ENV HOST=0.0.0.0 \
    PORT=8000 \
    PIPELINE_BACKEND=jsonl \
    PIPELINE_JSONL_PATH=/data/pipeline_data.jsonl \
    LOG_FORMAT=json
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["pipeline-service", "healthcheck"]
ENTRYPOINT ["pipeline-service"]

# Oracle deployments: the same binary plus Instant Client, which the oracle
# crate loads at run time.
FROM base AS oracle
ARG INSTANT_CLIENT_ZIP=https://download.oracle.com/otn_software/linux/instantclient/instantclient-basiclite-linuxx64.zip
RUN apt-get update \
    && apt-get install -y --no-install-recommends libaio1 ca-certificates curl unzip \
    && curl -fsSLo /tmp/instantclient.zip "$INSTANT_CLIENT_ZIP" \
    && mkdir -p /opt/oracle && unzip -q /tmp/instantclient.zip -d /opt/oracle \
    && ln -s /opt/oracle/instantclient_* /opt/oracle/instantclient \
    && rm /tmp/instantclient.zip \
    && apt-get purge -y curl unzip && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV LD_LIBRARY_PATH=/opt/oracle/instantclient \
    PIPELINE_BACKEND=oracle
USER pipeline

# The default image: JSON Lines, no Oracle client.
FROM base AS runtime
VOLUME ["/data"]
USER pipeline
