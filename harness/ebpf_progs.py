"""The eBPF program shapes of model/ebpf.py as BPF_PROG_TYPE_SK_REUSEPORT instructions, loaded
against a REUSEPORT_SOCKARRAY's fd. Kernel side: the encoding only; what a shape means is the
model's (model/ebpf.py), and the two are one table of shapes.

Registers: r6 ctx (struct sk_reuseport_md), r2/r3 data/data_end while reading the payload,
the key at r10 - 4. md->data starts at the TCP header (filter.c:bpf_init_reuseport_kern:
skb->data), so the payload is doff * 4 bytes on.
"""

from __future__ import annotations

from harness import bpf as b
from model.ebpf import EbpfProgram, Shape


def _ret(action: int) -> list[b.Insn]:
    return [b.mov_imm(0, action), b.exit_()]


def _payload_key(n: int, fail: int) -> list[b.Insn]:
    """*(u32 *)(r10 - 4) = be32(first 4 payload bytes) % n; too short: return `fail`."""
    body = [
        b.ldx(b.DW, 2, 6, b.MD_DATA),
        b.ldx(b.DW, 3, 6, b.MD_DATA_END),
        b.mov_reg(4, 2),
        b.add_imm(4, 20),  # the fixed TCP header
    ]
    rest = [
        b.ldx(b.B, 5, 2, 12),  # doff << 4 | reserved
        b.rsh_imm(5, 4),
        b.lsh_imm(5, 2),  # doff * 4: at most 60
        b.add_reg(2, 5),  # r2: the payload
        b.mov_reg(4, 2),
        b.add_imm(4, 4),
    ]
    load = [
        b.ldx(b.W, 7, 2, 0),
        b.be32(7),
        b.mod32_imm(7, n),
        b.stx(b.W, 10, 7, -4),
    ]
    tail = _ret(fail)
    # if r4 > r3 (past data_end) skip to the tail, whose length is known; `load` jumps over it
    jump_load = [b.ja(len(tail))]
    second = [b.jgt_reg(4, 3, len(load) + len(jump_load))]
    first = [b.jgt_reg(4, 3, len(rest) + len(second) + len(load) + len(jump_load))]
    return [*body, *first, *rest, *second, *load, *jump_load, *tail]


def instructions(prog: EbpfProgram, map_fd: int) -> list[b.Insn]:
    """The program for `prog`'s shape, with the map loaded from map_fd."""
    if prog.shape is Shape.PASS:
        return _ret(b.SK_PASS)
    if prog.shape is Shape.DROP:
        return _ret(b.SK_DROP)
    fail = b.SK_DROP if prog.fail_drop else b.SK_PASS
    out = [b.mov_reg(6, 1)]
    if prog.shape is Shape.MIGRATE:
        # a SYN (md->migrating_sk NULL) passes unselected: the hash picks
        out += [b.ldx(b.DW, 7, 6, b.MD_MIGRATING_SK), b.jne_imm(7, 0, 2), *_ret(b.SK_PASS)]
    if prog.payload_mod:
        out += _payload_key(prog.key, fail)
    else:
        out.append(b.st_imm(b.W, 10, -4, prog.key if prog.key < (1 << 31) else prog.key - (1 << 32)))
    out += [
        b.mov_reg(1, 6),
        *b.ld_map_fd(2, map_fd),
        b.mov_reg(3, 10),
        b.add_imm(3, -4),
        b.mov_imm(4, 0),
        b.call(b.FUNC_SK_SELECT_REUSEPORT),
        b.jne_imm(0, 0, 2),  # the helper failed: `fail`
        *_ret(b.SK_PASS),
        *_ret(fail),
    ]
    return out


def attach_type(prog: EbpfProgram) -> int:
    return b.SK_REUSEPORT_SELECT_OR_MIGRATE if prog.migrates else 0
