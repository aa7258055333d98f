"""Freed memory kept for reuse: a large tensor allocated again costs no new page faults."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from mosaicnet.meta.allocator import default_allocation, reuse_freed_memory

MB = 1 << 20


def _faults_of_fresh_tensor(megabytes: int) -> int:
    """Minor page faults of allocating and filling a tensor (freed afterwards)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensor = torch.ones(megabytes * MB // 4)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del tensor
    return after - before


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_a_freed_large_tensor_is_reused_without_page_faults():
    pages = 64 * MB // resource.getpagesize()
    try:
        assert reuse_freed_memory()
        _faults_of_fresh_tensor(64)  # the heap grows once
        assert _faults_of_fresh_tensor(64) < 0.1 * pages
        assert default_allocation()
        # glibc's default: a block this large is mapped afresh and faulted in again.
        assert _faults_of_fresh_tensor(64) > 0.5 * pages
    finally:
        reuse_freed_memory()  # what training sets anyway; other tests run after this one
