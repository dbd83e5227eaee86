# clouddevice_exporter: a static-ish Rust binary on a distroless, non-root runtime.
#   docker build -t clouddevice_exporter --build-arg REVISION="$(git rev-parse --short HEAD)" .
#   docker run --rm -p 10123:10123 clouddevice_exporter --demo

FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first: this layer is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/build.rs \
    && echo 'fn main() {}' > benches/scrape.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src benches

COPY src ./src
COPY benches ./benches
ARG REVISION=unknown
ENV CLOUDDEVICE_EXPORTER_REVISION=${REVISION}
# Cargo compares modification times: make sure the real sources count as newer than the stubs.
RUN touch src/main.rs src/lib.rs src/build.rs \
    && cargo build --release --locked \
    && cp target/release/clouddevice_exporter /clouddevice_exporter

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="clouddevice_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Huawei Cloud CloudDevice (KooPhone cloud phone) instances" \
      org.opencontainers.image.source="https://github.com/clouddevice-exporter/clouddevice_exporter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /clouddevice_exporter /usr/local/bin/clouddevice_exporter
# The distroless "nonroot" user.
USER 65532:65532
EXPOSE 10123
ENTRYPOINT ["/usr/local/bin/clouddevice_exporter"]
