# syntax=docker/dockerfile:1
# tandem's container image: the README's release build, run as a non-root user on a
# distroless base.
#
#   docker build -t tandem .
#   docker run --rm -p 8080:8080 -v tandem-data:/data tandem
#
# scripts/k8s-validate checks that the build command below is the README's and that the
# image runs the binary it builds, as a non-root user.

# Build: the official Rust image of the toolchain the project is built with. It carries the C
# compiler and make that ring and jemalloc build with; no other system library is linked
# (rustls and ring, no OpenSSL).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry cache keeps downloaded crates between builds; the build itself is exactly the
# README's.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked
# An empty data directory owned by the runtime user: a volume mounted at /data starts from
# it, so a node alone can write its store there (distroless has no shell to make it).
RUN mkdir -p /out/data

# Run: glibc and libgcc only (the binary needs nothing else), no shell, no package manager.
# The `nonroot` variant's user is 65532:65532; the Kubernetes manifests name the same numbers.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tandem /usr/local/bin/tandem
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
# A node alone keeps its moderation store and generated id secret in --data-dir; a cluster
# keeps its store in NATS JetStream and writes nothing here.
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
