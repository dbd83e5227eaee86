# clouddevice_exporter: a static-ish Rust binary on a distroless, non-root runtime.
#   docker build -t clouddevice_exporter \
#     --build-arg VERSION="$(cargo pkgid | sed 's/.*[#@]//')" \
#     --build-arg REVISION="$(git rev-parse --short HEAD)" .
#   docker run --rm -p 10123:10123 clouddevice_exporter --demo
#
# VERSION must be the version in Cargo.toml (the build checks it), so the image's version label
# always says what is inside.
#
# Both base images are pinned by digest, so a rebuild uses exactly the bytes that were reviewed.
# To update one, look up the digest of its tag and replace it here, e.g.
#   docker buildx imagetools inspect rust:1.95-bookworm --format '{{json .Manifest.Digest}}'
#   crane digest gcr.io/distroless/cc-debian12:nonroot
# (Renovate's and Dependabot's Docker managers open such updates by themselves.)

FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
ARG VERSION

# Dependencies first: this layer is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY simulator/Cargo.toml ./simulator/
RUN version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)" \
    && if [ "${VERSION}" != "${version}" ]; then \
         echo "build with --build-arg VERSION=${version} (the version in Cargo.toml), not '${VERSION}'" >&2; exit 1; \
       fi
RUN mkdir -p src benches simulator/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/build.rs \
    && for bench in scrape pipeline prometheus accounts gateway; do echo 'fn main() {}' > "benches/$bench.rs"; done \
    && touch src/lib.rs simulator/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src benches simulator/src

COPY src ./src
COPY simulator/src ./simulator/src
COPY benches ./benches
ARG REVISION=unknown
ENV CLOUDDEVICE_EXPORTER_REVISION=${REVISION}
# Cargo compares modification times: make sure the real sources count as newer than the stubs.
RUN touch src/main.rs src/lib.rs src/build.rs simulator/src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/clouddevice_exporter /clouddevice_exporter

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
ARG VERSION
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
# The image has no curl: the exporter asks its own /-/healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/clouddevice_exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/clouddevice_exporter"]
