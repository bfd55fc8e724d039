"""sockharness harness: scenarios, the kernel backend, comparison, reports, CLI."""

from harness import _startup  # noqa: F401, I001  (first: a signal while importing is one line)
from harness import _numba_cache  # noqa: F401  (numba's cache folder, chosen before numba loads)
