"""sockharness harness: scenarios, the kernel backend, comparison, reports, CLI."""

from harness import _numba_cache  # noqa: F401  (numba's cache folder, chosen before numba loads)
