"""Allocator settings for the worker and its decode process: freed batch memory goes back to the OS.

Every batch allocates tens of megabytes (messages, Arrow columns, the insert's
stream) and frees them a second later. With glibc's defaults that memory stays
in the process: one malloc arena per thread that ever allocated (up to 8 per
core) and a large-block threshold that grows with the blocks freed, so big
buffers end up on heaps that rarely shrink. Arrow's own allocator (mimalloc in
the Linux wheels) keeps freed pages for reuse too. Here, before the first batch:

* glibc: at most 2 arenas, and blocks of 128 KiB or more straight from (and
  back to) the OS (``mallopt``, as ``MALLOC_ARENA_MAX`` and
  ``MALLOC_MMAP_THRESHOLD_`` would);
* Arrow: the system allocator (as ``ARROW_DEFAULT_MEMORY_POOL=system`` would).

This lowers the worker's peak RSS at the same throughput (the README's
Performance section has the figures). Any of the three variables set in the
environment wins over this module. On a libc without ``mallopt`` the glibc part
is skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024


def lean_allocators() -> None:
    """Apply the settings above to this process (call it before it starts threads)."""
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(None).mallopt
        if "MALLOC_ARENA_MAX" not in os.environ:
            mallopt(M_ARENA_MAX, ARENAS)
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
