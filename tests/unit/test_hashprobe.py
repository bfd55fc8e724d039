"""The hash reader's pieces that need no kernel: the instruction encoding, the map key and the
batching by source port (the map's key)."""

from __future__ import annotations

import struct

from harness import bpf
from harness.hashprobe import _batches, _sport_key, recorder
from harness.inject import Flow


def test_insn_encoding_is_struct_bpf_insn():
    # BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 1 (the kernel's `r0 = 1`): b7 00 0000 01000000
    assert bpf.mov_imm(0, 1).encode() == bytes.fromhex("b700000001000000")
    # BPF_LDX | BPF_MEM | BPF_W, dst r8, src r6, off 32: 61 68 2000 00000000
    assert bpf.ldx(bpf.W, 8, 6, bpf.MD_HASH).encode() == bytes.fromhex("6168200000000000")
    assert bpf.exit_().encode() == bytes.fromhex("9500000000000000")
    lo, hi = bpf.ld_map_fd(1, 7)
    assert lo.encode() == bytes.fromhex("1811000007000000") and hi.encode() == bytes(8)


def test_recorder_jumps_to_the_drop_and_returns_sk_drop():
    prog = recorder(5)
    jump = next(i for i, insn in enumerate(prog) if insn.code == bpf.JMP | bpf.JGT | bpf.X)
    target = jump + 1 + prog[jump].off
    assert prog[target] == bpf.mov_imm(0, bpf.SK_DROP) and prog[-1] == bpf.exit_()


def test_sport_key_is_the_port_as_loaded_from_the_header():
    # th->source is big-endian on the wire; a little-endian u16 load swaps it
    assert _sport_key(0x1234) == struct.pack("<I", 0x3412)


def test_batches_hold_each_source_port_once():
    flows = [Flow(f"2001:db8::{i}", 30000 + i % 3, "fd00::1", 8080) for i in range(10)]
    batches = _batches(flows)
    assert sorted((f for b in batches for f in b), key=str) == sorted(flows, key=str)
    assert all(len({f.sport for f in b}) == len(b) for b in batches)
    assert len(batches) == 4  # port 30000 carries 4 of the 10
