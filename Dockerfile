# Build: docker build -t jifen .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# SQLite's build options (see the file).
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
# Cargo.toml declares the benchmarks, so their files must be present to build at all.
COPY benches ./benches
# A member of the workspace (the load generator); not built here.
COPY bench ./bench
COPY openapi.yaml ./
RUN cargo build --release --locked --bin jifen

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/jifen --create-home jifen
COPY --from=build /src/target/release/jifen /usr/local/bin/jifen
USER jifen
WORKDIR /var/lib/jifen
ENV JIFEN_BIND=0.0.0.0:8080 \
    JIFEN_DATABASE_URL=sqlite:///var/lib/jifen/data/jifen.db \
    RUST_LOG=info
VOLUME ["/var/lib/jifen/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["jifen"]
CMD ["serve"]
