# baler's images, one target each (docker-compose.yml builds them):
#   api     the HTTP API (no worker), non-root
#   worker  a build worker: QEMU, the microVM's kernel and initramfs, non-root
#   redis   Debian's redis-server (the compose stack's queue and records)
#   s3      a single-node Ceph RADOS Gateway (scripts/rgw/run-rgw.sh): the compose stack's S3 store
#
# Base images: the official Debian/Node images by default. Hosts that cannot reach Docker Hub
# build local equivalents with scripts/docker/base-images.sh and pass
#   --build-arg DEBIAN_IMAGE=baler-base/debian:bookworm --build-arg NODE_IMAGE=baler-base/node:20-bookworm
# (docker-compose.yml does, from BALER_DEBIAN_IMAGE / BALER_NODE_IMAGE).
#
# Works with the classic builder (Debian's docker.io 20.10 without buildx): no RUN --mount. That
# builder runs every stage before the target, so the ones without Node come first.
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------- redis
FROM ${DEBIAN_IMAGE} AS redis
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 0750 /data
USER redis
VOLUME /data
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=2s --retries=10 CMD ["redis-cli", "ping"]
# AOF, fsync every second; reachable only on the compose network (no published port).
CMD ["redis-server", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""]

# ---------------------------------------------------------------- s3
# One mon, one memstore OSD (objects live in its memory: lost when the container stops) and
# radosgw on :7480. For trying baler out and for tests; point BALER_S3_* at a real S3 service
# in production.
FROM ${DEBIAN_IMAGE} AS s3
RUN apt-get update \
 && apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/rgw/run-rgw.sh /usr/local/bin/run-rgw.sh
# RGW_DIR must be fresh at each start: docker-compose.yml mounts a tmpfs on /var/lib/rgw.
ENV RGW_DIR=/var/lib/rgw/state RGW_ADDR=0.0.0.0 RGW_PORT=7480
USER ceph
EXPOSE 7480
HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=15 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7480 && printf 'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 2 line <&3 && [[ $line == HTTP/1.?' 200'* ]]"]
ENTRYPOINT ["/usr/local/bin/run-rgw.sh"]

# ---------------------------------------------------------------- runtime npm packages
FROM ${NODE_IMAGE} AS deps
WORKDIR /opt/baler
COPY package.json package-lock.json ./
# tsx (runs the TypeScript) is a runtime dependency; dev tools stay out.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---------------------------------------------------------------- what api and worker share
FROM ${NODE_IMAGE} AS runtime
# zstd, xz, bzip2: decompressors for uploaded archives and layers (src/image/sources/archive).
RUN apt-get update \
 && apt-get install -y --no-install-recommends zstd xz-utils bzip2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/baler --no-create-home --shell /usr/sbin/nologin baler \
 && install -d -o baler -g baler -m 0750 /var/lib/baler
WORKDIR /opt/baler
ENV NODE_ENV=production DATA_DIR=/var/lib/baler

# ---------------------------------------------------------------- api
FROM runtime AS api
COPY --from=deps /opt/baler/node_modules node_modules
COPY package.json openapi.yaml ./
COPY src src
# Listens on all addresses of the container: the compose file requires BALER_TOKENS_FILE and
# publishes the port on loopback only. Workers run in their own containers.
ENV HOST=0.0.0.0 PORT=8080 BALER_LOCAL_WORKERS=0
USER baler
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=10s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--import", "tsx", "src/main.ts"]

# ---------------------------------------------------------------- the microVM's kernel + initramfs
# Built by the project's own code (src/vm/assets/, through tsx) from Debian packages (apt-get
# download of the cloud kernel, busybox-static, bash-static, GNU tar, setcap, setfattr); only
# its output goes on. Only what the build reads is copied, so other changes keep this layer.
FROM ${NODE_IMAGE} AS vm-assets
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static bash-static tar libcap2-bin attr xz-utils zstd
WORKDIR /opt/baler
COPY --from=deps /opt/baler/node_modules node_modules
COPY package.json ./
COPY scripts/build-vm-assets.mjs scripts/
COPY src/vm/platform.ts src/vm/
COPY src/vm/platforms src/vm/platforms
COPY src/vm/assets src/vm/assets
COPY src/vm/guest src/vm/guest
RUN BALER_VM_CACHE=/opt/baler/vm node scripts/build-vm-assets.mjs \
 && rm -rf /opt/baler/vm/downloads /opt/baler/vm/kernel-package.json

# ---------------------------------------------------------------- worker
FROM runtime AS worker
# QEMU and the tools that make a step's disks (mksquashfs, mke2fs); setpriv is in util-linux.
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 squashfs-tools e2fsprogs \
 && rm -rf /var/lib/apt/lists/*
# Without apt's package lists the worker uses the newest assets in the cache: these.
COPY --from=vm-assets /opt/baler/vm /opt/baler/vm
COPY --from=deps /opt/baler/node_modules node_modules
COPY package.json openapi.yaml ./
COPY src src
COPY workers workers
# KVM when /dev/kvm is passed in and opens (docker-compose.kvm.yml), TCG otherwise.
ENV BALER_VM_CACHE=/opt/baler/vm BALER_VM_ACCEL=auto
USER baler
CMD ["node", "--import", "tsx", "workers/build-worker.ts"]
