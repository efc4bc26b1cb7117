"""What the benchmark scripts share: locating the shared data or skipping with the reason."""
import sys

from zeroshot.spaces.shared_data import shared_data


def require_shared(*relative: str):
    """Paths of shared data files; exits saying which is absent (benchmarks skip, never fail, without it)."""
    paths = [shared_data(r) for r in relative]
    missing = [r for r, p in zip(relative, paths) if p is None]
    if missing:
        sys.exit(f"benchmark skipped: ../shared/data/{', '.join(missing)} absent (set ZEROSHOT_SHARED_DATA)")
    return paths
