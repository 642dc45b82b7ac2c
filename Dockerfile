# Multi-stage build: compile with the Rust toolchain, run on Debian slim with Debian's chromium.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin driftstack

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium chromium-headless-shell bubblewrap ca-certificates fonts-liberation \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/driftstack driftstack
COPY --from=build /src/target/release/driftstack /usr/local/bin/driftstack
# Browsers run in a bubblewrap sandbox. As this non-root user, bubblewrap maps the user to uid
# 65534 in a user namespace: the container needs unprivileged user namespaces (a seccomp profile
# that allows them; see docs/SECURITY.md). Run as root instead to give browsers a distinct uid.
USER 10001
WORKDIR /var/lib/driftstack
ENV DRIFTSTACK_LISTEN=0.0.0.0:8080 \
    DRIFTSTACK_DATA_DIR=/var/lib/driftstack/data \
    DRIFTSTACK_CHROMIUM=/usr/lib/chromium/chromium-headless-shell
EXPOSE 8080
HEALTHCHECK CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["driftstack"]
CMD ["serve"]
