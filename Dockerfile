# syntax=docker/dockerfile:1
# clients-gateway: a multi-stage build. Dependencies are compiled in their own layer (cargo-chef),
# so a code change rebuilds only the crate. The runtime image is distroless (glibc, CA
# certificates, no shell), runs as a numeric non-root user and needs no writable filesystem.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# make builds jemalloc (the gateway's allocator).
RUN apt-get update \
 && apt-get install -y --no-install-recommends make=4.3-4.1 \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.71
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin clients-gateway \
 && strip /app/target/release/clients-gateway

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
# Given by the build (docs/operating/deploy.md): VERSION (git describe), REVISION (the
# commit), CREATED (RFC 3339), SOURCE (the repository's URL).
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="clients-gateway" \
      org.opencontainers.image.description="One POST /clients that creates a client in Lucca Project, Clockify, PlusVibe, ChatDash and missionX at once, answering 207 Multi-Status" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder --chown=0:0 --chmod=0555 /app/target/release/clients-gateway /usr/local/bin/clients-gateway
USER 65532:65532
# `docker run -p 8080:8080 IMAGE --sandbox` is reachable from the host. (A configured
# server.bind wins over it.)
ENV CLIENTS_GATEWAY_SANDBOX_BIND=0.0.0.0:8080
EXPOSE 8080
# The probe follows the configuration's server.ops_bind / server.bind (the sandbox's default
# when the file is absent).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/clients-gateway", "healthcheck", "--config", "/etc/clients-gateway/gateway.toml"]
ENTRYPOINT ["/usr/local/bin/clients-gateway"]
CMD ["--config", "/etc/clients-gateway/gateway.toml"]
