#!/usr/bin/env bash
# Starts a Docker engine that can limit each container's writable storage (where a session's
# /workspace lives): the btrfs storage driver with simple quotas, on a loop-mounted btrfs file.
# Simple quotas count only what a container writes (not its image) and keep container removal
# fast; classic btrfs quotas made every removal take seconds of kernel accounting.
# Idempotent: does nothing when such an engine already answers. Each run that starts the engine
# checks the file system afresh: a disk file that an interrupted run left without a file system is
# made again, and simple quotas are turned on if they are not (the engine never starts without them).
set -euo pipefail

DATA_ROOT=${CRAWLHUB_DOCKER_DATA_ROOT:-/var/lib/crawlhub-docker}
IMG=${CRAWLHUB_DOCKER_BTRFS_IMAGE:-/var/lib/crawlhub-docker-sq.btrfs}
SIZE=${CRAWLHUB_DOCKER_BTRFS_SIZE:-60G}
LOG=${CRAWLHUB_DOCKERD_LOG:-/var/log/dockerd.log}
here=$(cd "$(dirname "$0")" && pwd)

# The btrfs quota mode of the file system mounted at $1, as the kernel reports it: squota (simple
# quotas), qgroup (classic quotas), none (quotas off), or unknown.
quota_mode() {
  local uuid
  uuid=$(findmnt -n -o UUID "$1" 2>/dev/null || true)
  [ -n "$uuid" ] || uuid=$(blkid -p -o value -s UUID "$(findmnt -n -o SOURCE "$1")" 2>/dev/null || true)
  if [ -z "$uuid" ] || [ ! -d "/sys/fs/btrfs/$uuid" ]; then
    echo unknown
  elif [ -f "/sys/fs/btrfs/$uuid/qgroups/mode" ]; then
    cat "/sys/fs/btrfs/$uuid/qgroups/mode"
  elif [ -d "/sys/fs/btrfs/$uuid/qgroups" ]; then
    echo qgroup # a kernel before 6.7: no simple quotas, no mode file
  else
    echo none
  fi
}

# The file system type in the file $1; empty when blkid finds none; fails when blkid cannot tell.
fs_type() {
  local out rc=0
  out=$(blkid -p -o value -s TYPE "$1" 2>/dev/null) || rc=$?
  case $rc in 0) echo "$out" ;; 2) echo ;; *) return 1 ;; esac
}

if docker info >/dev/null 2>&1; then
  driver=$(docker info --format '{{.Driver}}')
  backing=$(docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "Backing Filesystem"}}{{index . 1}}{{end}}{{end}}')
  case "$driver/$backing" in
    btrfs/* | zfs/* | overlay2/xfs)
      # (overlay2 limits storage only on XFS mounted with pquota: the service says at start if it cannot.)
      echo "docker-up: engine already running (storage driver $driver on ${backing:-?})"
      # Only looked at: quotas cannot be changed under a running engine.
      if [ "$driver" = btrfs ] && [ "$(docker info --format '{{.DockerRootDir}}')" = "$DATA_ROOT" ] &&
        mode=$(quota_mode "$DATA_ROOT") && [ "$mode" != squota ]; then
        echo "docker-up: warning: $DATA_ROOT has btrfs quota mode '$mode', not simple quotas; stop the engine and run this again" >&2
      fi
      exit 0
      ;;
  esac
  # Installing docker.io on a systemd machine starts the distribution's engine (overlay2), which
  # cannot cap a container's writable storage: it makes way for one that can.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
    echo "docker-up: the running engine uses $driver, which cannot limit a session's storage; stopping it for one on btrfs"
    systemctl stop docker.socket docker.service
  else
    echo "docker-up: an engine on $driver already runs and cannot limit a session's storage; stop it and run this again" >&2
    exit 1
  fi
fi

command -v mkfs.btrfs >/dev/null || { echo "docker-up: mkfs.btrfs missing (apt-get install btrfs-progs)" >&2; exit 1; }
command -v blkid >/dev/null || { echo "docker-up: blkid missing (apt-get install util-linux)" >&2; exit 1; }
mkdir -p "$DATA_ROOT"
if ! findmnt -n "$DATA_ROOT" >/dev/null; then
  if [ -e "$IMG" ]; then
    [ -f "$IMG" ] || { echo "docker-up: $IMG is not a regular file" >&2; exit 1; }
    type=$(fs_type "$IMG") || { echo "docker-up: blkid cannot tell what $IMG holds" >&2; exit 1; }
    case "$type" in
      btrfs) ;;
      "")
        # An earlier version of this script stopped between truncate and mkfs.
        echo "docker-up: $IMG holds no file system (an interrupted run); making it again"
        rm -f "$IMG"
        ;;
      *)
        echo "docker-up: $IMG holds a $type file system, not btrfs; move it away or set CRAWLHUB_DOCKER_BTRFS_IMAGE" >&2
        exit 1
        ;;
    esac
  fi
  if [ ! -e "$IMG" ]; then
    # Made under another name and renamed once mkfs is done: an interrupted run leaves no $IMG without a file system.
    rm -f "$IMG.new"
    truncate -s "$SIZE" "$IMG.new"
    mkfs.btrfs -q "$IMG.new" >/dev/null
    mv "$IMG.new" "$IMG"
  fi
  mount -o loop "$IMG" "$DATA_ROOT"
fi
fstype=$(findmnt -n -o FSTYPE "$DATA_ROOT")
[ "$fstype" = btrfs ] || { echo "docker-up: $DATA_ROOT is a $fstype mount, not btrfs" >&2; exit 1; }

# Simple quotas, checked on every start: the engine's btrfs driver would otherwise turn on classic
# quotas itself at the first container with a size limit, and every removal would then take seconds.
mode=$(quota_mode "$DATA_ROOT")
case "$mode" in
  squota) ;;
  none)
    echo "docker-up: turning on btrfs simple quotas at $DATA_ROOT"
    python3 "$here/btrfs-simple-quota.py" "$DATA_ROOT" || true
    mode=$(quota_mode "$DATA_ROOT")
    if [ "$mode" != squota ]; then
      echo "docker-up: btrfs simple quotas did not turn on at $DATA_ROOT (quota mode: $mode; they need Linux 6.7+)" >&2
      exit 1
    fi
    ;;
  unknown)
    echo "docker-up: cannot find $DATA_ROOT's btrfs file system under /sys/fs/btrfs to read its quota mode" >&2
    exit 1
    ;;
  *)
    echo "docker-up: $DATA_ROOT has btrfs quota mode '$mode', not simple quotas (squota). To switch, with no engine" \
      "running: 'btrfs quota disable $DATA_ROOT', then run this again (containers made before lose their size limits)" >&2
    exit 1
    ;;
esac

nohup dockerd --data-root "$DATA_ROOT" --storage-driver btrfs >>"$LOG" 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "docker-up: engine ready (btrfs with simple quotas at $DATA_ROOT)"; exit 0; }
  sleep 1
done
echo "docker-up: dockerd did not answer within 60 s; see $LOG" >&2
exit 1
