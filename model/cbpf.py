"""The classic BPF reuseport programs scenarios can attach (SO_ATTACH_REUSEPORT_CBPF).

A small named set, each with its instructions (for the kernel) and its meaning (for the model):
the program's return value is an index into the group's socks[] (net/core/sock_reuseport.c
run_bpf_filter), which sees the packet from the TCP payload on (hdr_len pulled).
"""

from __future__ import annotations

import enum
import functools
import struct
from dataclasses import dataclass

# include/uapi/linux/bpf_common.h, filter.h
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_ALU_MOD_K = 0x94  # BPF_ALU | BPF_MOD | BPF_K
BPF_RET_A = 0x16  # BPF_RET | BPF_A
BPF_RET_K = 0x06  # BPF_RET | BPF_K
SKF_AD_OFF = -0x1000
SKF_AD_CPU = 36


class Kind(enum.Enum):
    PAYLOAD_MOD = "payload%"  # ld [0]; mod #N; ret a
    CPU = "cpu"  # ld #cpu; ret a
    CONST = "const"  # ret #K


@dataclass(frozen=True)
class Program:
    kind: Kind
    arg: int = 0

    def __str__(self) -> str:
        if self.kind is Kind.PAYLOAD_MOD:
            return f"payload%{self.arg}"
        if self.kind is Kind.CPU:
            return "cpu"
        return str(self.arg)

    def instructions(self) -> list[tuple[int, int, int, int]]:
        """(code, jt, jf, k) per instruction, as struct sock_filter."""
        if self.kind is Kind.PAYLOAD_MOD:
            return [(BPF_LD_W_ABS, 0, 0, 0), (BPF_ALU_MOD_K, 0, 0, self.arg), (BPF_RET_A, 0, 0, 0)]
        if self.kind is Kind.CPU:
            return [(BPF_LD_W_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_CPU) & 0xFFFFFFFF), (BPF_RET_A, 0, 0, 0)]
        return [(BPF_RET_K, 0, 0, self.arg)]

    def filter_bytes(self) -> bytes:
        return b"".join(struct.pack("HBBI", *ins) for ins in self.instructions())

    def run(self, payload: bytes, cpu: int) -> tuple[int, str]:
        """The program's return value on a packet, and how it came about."""
        if self.kind is Kind.PAYLOAD_MOD:
            if len(payload) < 4:
                # a load past the end aborts a classic program with return 0
                return 0, f"ld [0] past the end of a {len(payload)}-byte payload: returns 0"
            word = int.from_bytes(payload[:4], "big")
            return word % self.arg, f"ld [0] = {word:#x}, % {self.arg} = {word % self.arg}"
        if self.kind is Kind.CPU:
            return cpu, f"ld #cpu = {cpu}"
        return self.arg, f"ret #{self.arg}"


# struct sock_filter's k is a __u32 (include/uapi/linux/filter.h): a C program cannot pass a
# bigger constant, so a bigger N or K is a parse error, not a kernel outcome
K_MAX = 0xFFFFFFFF


def _k(text: str) -> int | None:
    """An ASCII decimal K (str.isdigit also takes '²'), or None."""
    if not (0 < len(text) <= 10 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def parse_program(text: str) -> Program:
    """'payload%4', 'cpu' or a constant like '3'; ValueError otherwise."""
    text = text.strip()
    if text == "cpu":
        return Program(Kind.CPU)
    if text.startswith("payload%"):
        n = _k(text[len("payload%"):])
        if n is None or not 1 <= n <= K_MAX:
            raise ValueError(f"expected payload%N with N >= 1 and <= {K_MAX} (a BPF K is a u32), got {text!r}")
        return Program(Kind.PAYLOAD_MOD, n)
    k = _k(text)
    if k is not None:
        if k > K_MAX:
            raise ValueError(f"expected a constant 0..{K_MAX} (a BPF K is a u32), got {text!r}")
        return Program(Kind.CONST, k)
    raise ValueError(f"expected a program: payload%N, cpu or a constant, got {text!r}")


@functools.lru_cache(maxsize=1 << 16)
def payload_bytes(sport: int, length: int) -> bytes:
    """The data a SYN with payload=N carries: its first word is the source port, so scenarios
    can aim payload%N programs (00 00 hi lo, then a filler)."""
    head = sport.to_bytes(4, "big")
    return (head + bytes(range(256)) * ((length // 256) + 1))[:length]
