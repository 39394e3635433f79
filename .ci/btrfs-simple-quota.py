"""Turns on btrfs simple quotas (kernel 6.7+) on a mounted file system, through the ioctl that
btrfs-progs 6.7+ calls for `btrfs quota enable --simple` (Debian 12's btrfs-progs is older).
Simple quotas count only the bytes a subvolume writes itself, not those it shares with its image,
and deleting a subvolume stays cheap: the right accounting for per-container storage limits."""
import fcntl
import os
import struct
import sys

BTRFS_IOC_QUOTA_CTL = 0xC0109428  # _IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args)
BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA = 4

fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.ioctl(fd, BTRFS_IOC_QUOTA_CTL, struct.pack("QQ", BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA, 0))
finally:
    os.close(fd)
