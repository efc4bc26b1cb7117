"""zeroshot.allocator: freed memory stays in the process (glibc), and the command line applies it."""
import platform

import numpy as np
import pytest

from zeroshot import allocator, cli

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings exist in glibc only")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@glibc
def test_freed_blocks_stay_mapped():
    assert allocator.keep_freed_memory() is True
    blocks = [np.ones(2 << 20) for _ in range(8)]           # 8 blocks of 16 MB, below the mmap threshold
    held = _rss_bytes()
    del blocks
    assert _rss_bytes() > held - (64 << 20)                  # the 128 MB are kept for reuse, not unmapped


def test_not_applied_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", [])
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert allocator.keep_freed_memory() is False
    assert allocator.keep_freed_memory() is False             # the first answer is kept


def test_command_line_applies_it(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    assert cli.main(["spaces"]) == 0
    assert calls == [1]
