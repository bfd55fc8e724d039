"""Booting Debian's kernels under QEMU and running the corpus in each (`sockharness kernels`)."""
