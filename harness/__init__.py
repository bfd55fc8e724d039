"""sockharness harness: scenarios, the kernel backend, comparison, reports, CLI."""
