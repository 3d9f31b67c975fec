# syntax=docker/dockerfile:1
# Build:  docker build -t pipeline-service .
# Run:    docker run -p 8000:8000 -v pipeline-data:/data pipeline-service

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin pipeline-service \
    && strip target/release/pipeline-service

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin pipeline \
    && mkdir -p /data && chown pipeline /data
COPY --from=build /src/target/release/pipeline-service /usr/local/bin/pipeline-service
COPY sample_record.json /usr/share/pipeline-service/sample_record.json
ENV HOST=0.0.0.0 \
    PORT=8000 \
    PIPELINE_BACKEND=jsonl \
    PIPELINE_JSONL_PATH=/data/pipeline_data.jsonl \
    LOG_FORMAT=json
VOLUME ["/data"]
USER pipeline
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["pipeline-service", "healthcheck"]
ENTRYPOINT ["pipeline-service"]
