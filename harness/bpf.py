"""The bpf() system call from Python: maps, program loading and the instruction encoding, with
no compiler, headers or libbpf (so it runs in every guest). Kernel side: I/O only.

Layouts from include/uapi/linux/bpf.h (union bpf_attr, struct bpf_insn); a kernel reads the
attr up to the size we pass and zero-fills the rest (kernel/bpf/syscall.c:__sys_bpf).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass

_NR_BPF = 321  # arch/x86/entry/syscalls/syscall_64.tbl: bpf
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# enum bpf_cmd
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM, PROG_LOAD = 0, 1, 2, 3, 5
# enum bpf_map_type / enum bpf_prog_type
MAP_TYPE_ARRAY, MAP_TYPE_REUSEPORT_SOCKARRAY = 2, 20
PROG_TYPE_SK_REUSEPORT = 21
# enum bpf_attach_type
SK_REUSEPORT_SELECT, SK_REUSEPORT_SELECT_OR_MIGRATE = 39, 40
# enum sk_action
SK_DROP, SK_PASS = 0, 1
# enum bpf_func_id
FUNC_MAP_UPDATE_ELEM, FUNC_SK_SELECT_REUSEPORT = 2, 82
BPF_PSEUDO_MAP_FD = 1
SO_ATTACH_REUSEPORT_EBPF = 52  # include/uapi/asm-generic/socket.h

# struct sk_reuseport_md: data, data_end (8-byte __bpf_md_ptr each), len, eth_protocol,
# ip_protocol, bind_inany, hash (u32 each)
MD_DATA, MD_DATA_END, MD_HASH, MD_MIGRATING_SK = 0, 8, 32, 48

# opcode classes, sizes, modes, ALU/JMP operations and sources (include/uapi/linux/bpf_common.h)
LD, LDX, ST, STX, ALU, JMP, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, MEM = 0x00, 0x60
K, X = 0x00, 0x08
ADD, OR, LSH, RSH, MOD, MOV, END = 0x00, 0x40, 0x60, 0x70, 0x90, 0xB0, 0xD0
TO_BE = 0x08
JA, JEQ, JGT, JNE, CALL, EXIT = 0x00, 0x10, 0x20, 0x50, 0x80, 0x90


class BpfError(OSError):
    """A bpf() call failed; a refused program carries the verifier's log."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        super().__init__(err, f"bpf({what}): {os.strerror(err)}" + (f"\n{log}" if log else ""))
        self.log = log


def bpf(cmd: int, attr: bytes, what: str) -> int:
    """bpf(cmd, &attr, sizeof attr); the return value, or BpfError with the errno."""
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _libc.syscall(_NR_BPF, cmd, buf, len(attr))
    if ret < 0:
        raise BpfError(ctypes.get_errno(), what)
    return ret


@dataclass(frozen=True)
class Insn:
    """struct bpf_insn: opcode, dst_reg:4 | src_reg:4, s16 off, s32 imm."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def mov_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | MOV | K, dst, imm=imm)


def mov_reg(dst: int, src: int) -> Insn:
    return Insn(ALU64 | MOV | X, dst, src)


def add_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | ADD | K, dst, imm=imm)


def add_reg(dst: int, src: int) -> Insn:
    return Insn(ALU64 | ADD | X, dst, src)


def or_reg(dst: int, src: int) -> Insn:
    return Insn(ALU64 | OR | X, dst, src)


def lsh_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | LSH | K, dst, imm=imm)


def ldx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(LDX | MEM | size, dst, src, off)


def st_imm(size: int, dst: int, off: int, imm: int) -> Insn:
    return Insn(ST | MEM | size, dst, off=off, imm=imm)


def stx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(STX | MEM | size, dst, src, off)


def jgt_reg(dst: int, src: int, off: int) -> Insn:
    return Insn(JMP | JGT | X, dst, src, off)


def jeq_imm(dst: int, imm: int, off: int) -> Insn:
    return Insn(JMP | JEQ | K, dst, off=off, imm=imm)


def jne_imm(dst: int, imm: int, off: int) -> Insn:
    return Insn(JMP | JNE | K, dst, off=off, imm=imm)


def ja(off: int) -> Insn:
    return Insn(JMP | JA, off=off)


def rsh_imm(dst: int, imm: int) -> Insn:
    return Insn(ALU64 | RSH | K, dst, imm=imm)


def mod32_imm(dst: int, imm: int) -> Insn:
    """w_dst %= imm (u32; imm is the instruction's 32 bits, read unsigned by the verifier)."""
    return Insn(ALU | MOD | K, dst, imm=imm if imm < (1 << 31) else imm - (1 << 32))


def be32(dst: int) -> Insn:
    """dst = htobe32(dst): the network-order word loaded little-endian, as a number."""
    return Insn(ALU | END | TO_BE, dst, imm=32)


def call(func: int) -> Insn:
    return Insn(JMP | CALL, imm=func)


def exit_() -> Insn:
    return Insn(JMP | EXIT)


def ld_map_fd(dst: int, fd: int) -> list[Insn]:
    """The two-slot BPF_LD | BPF_DW | BPF_IMM loading a map by its fd (BPF_PSEUDO_MAP_FD)."""
    return [Insn(LD | DW | IMM, dst, BPF_PSEUDO_MAP_FD, imm=fd), Insn(0)]


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    """A new map's fd (BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, flags)."""
    attr = struct.pack("<IIIII", map_type, key_size, value_size, max_entries, 0)
    return bpf(MAP_CREATE, attr, "BPF_MAP_CREATE")


def _elem(cmd: int, what: str, fd: int, key: bytes, value: ctypes.Array) -> None:
    """A map element command: map_fd, key and value pointers, flags 0 (BPF_ANY)."""
    kbuf = ctypes.create_string_buffer(key, len(key))
    attr = struct.pack("<iIQQQ", fd, 0, ctypes.addressof(kbuf), ctypes.addressof(value), 0)
    bpf(cmd, attr, what)


def map_update(fd: int, key: bytes, value: bytes) -> None:
    _elem(MAP_UPDATE_ELEM, "BPF_MAP_UPDATE_ELEM", fd, key, ctypes.create_string_buffer(value, len(value)))


def map_delete(fd: int, key: bytes) -> None:
    kbuf = ctypes.create_string_buffer(key, len(key))
    bpf(MAP_DELETE_ELEM, struct.pack("<iIQ", fd, 0, ctypes.addressof(kbuf)), "BPF_MAP_DELETE_ELEM")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value at key; None where there is none (ENOENT)."""
    vbuf = ctypes.create_string_buffer(value_size)
    try:
        _elem(MAP_LOOKUP_ELEM, "BPF_MAP_LOOKUP_ELEM", fd, key, vbuf)
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return vbuf.raw


def prog_load(prog_type: int, insns: list[Insn], expected_attach_type: int = 0) -> int:
    """A loaded program's fd (BPF_PROG_LOAD); a refusal raises with the verifier's log."""
    code = b"".join(i.encode() for i in insns)
    cbuf = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
    # prog_flags, prog_name[16], prog_ifindex, expected_attach_type
    attr = struct.pack("<IIQQIIQII16sII", prog_type, len(insns), ctypes.addressof(cbuf),
                       ctypes.addressof(lic), 1, len(log), ctypes.addressof(log), 0, 0,
                       b"sockharness", 0, expected_attach_type)
    try:
        return bpf(PROG_LOAD, attr, "BPF_PROG_LOAD")
    except BpfError as e:
        raise BpfError(e.errno, "BPF_PROG_LOAD", log.value.decode(errors="replace")) from None
