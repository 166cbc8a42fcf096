# syntax=docker/dockerfile:1
#
# audience-operator image: `docker build -t audience-operator:0.1.0 .`
# Build stage: the release binary of the root package, from the locked dependency graph.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p audience-operator \
 && install -D -m 0755 target/release/audience-operator /out/audience-operator

# Runtime stage: glibc + libgcc + CA certificates, no shell, no package manager; runs as the
# distroless `nonroot` user (uid/gid 65532), which the Helm chart's securityContext matches.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/audience-operator /usr/local/bin/audience-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/audience-operator"]
CMD ["run"]
