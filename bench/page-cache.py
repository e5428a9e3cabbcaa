#!/usr/bin/env python3
"""Measure what the page cache costs on this machine, for the storage decisions in the README.

    python3 bench/page-cache.py [DIRECTORY] [MIB]

Writes a file of MIB MiB (default 1024) of random bytes in DIRECTORY (default /tmp) in 2 MiB blocks, through
the page cache and with O_DIRECT, then reads it back the same three ways: through the page cache after the
cache was emptied of it, through the page cache releasing every 8 MiB behind the read (posix_fadvise
DONTNEED), and with O_DIRECT. Prints MB/s (10^6 bytes) for each. Standard library only.
"""

import mmap
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
size = (int(sys.argv[2]) if len(sys.argv) > 2 else 1024) << 20
block = 2 << 20
release_step = 8 << 20
path = os.path.join(directory, f"page-cache-{os.getpid()}.bin")

buffer = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT needs
buffer.write(os.urandom(block))


def report(name, seconds):
    print(f"{name:<44} {size / seconds / 1e6:7.0f} MB/s")


def write(flags, name):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags, 0o600)
    start = time.monotonic()
    for offset in range(0, size, block):
        os.pwritev(fd, [buffer], offset)
    report(name, time.monotonic() - start)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean now, so this drops it from the cache
    os.close(fd)
    time.sleep(3)  # let freed memory settle, as it would between requests


def read(flags, name, release):
    fd = os.open(path, os.O_RDONLY | flags)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    start = time.monotonic()
    released = 0
    for offset in range(0, size, block):
        os.preadv(fd, [buffer], offset)
        if release and offset + block - released >= release_step:
            os.posix_fadvise(fd, released, offset + block - released, os.POSIX_FADV_DONTNEED)
            released = offset + block
    report(name, time.monotonic() - start)
    os.close(fd)
    time.sleep(3)


try:
    write(0, "write through the page cache")
    write(os.O_DIRECT, "write with O_DIRECT")
    read(0, "read through the page cache, not cached", release=False)
    read(0, "read through the page cache, released behind", release=True)
    read(os.O_DIRECT, "read with O_DIRECT", release=False)
finally:
    os.unlink(path)
