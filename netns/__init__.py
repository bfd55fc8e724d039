"""Isolated network namespaces for the kernel backend: create, configure, reap. No socket semantics."""
