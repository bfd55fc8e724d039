"""eBPF reuseport steering: BPF_MAP_TYPE_REUSEPORT_SOCKARRAY maps and a small named set of
BPF_PROG_TYPE_SK_REUSEPORT program shapes (SO_ATTACH_REUSEPORT_EBPF), each with its meaning for
the model; harness/ebpf_progs.py assembles the same shapes for the kernel.

Shapes (the text a scenario writes as the option value):
  pass              SK_PASS, no selection: the group's hash picks
  drop              SK_DROP: no socket (the SYN is answered with a RST)
  M[K]              bpf_sk_select_reuseport(ctx, M, &K, 0); SK_PASS (a failed selection, or a
                    key past the payload: no selection, the hash picks)
  M[payload%N]      the same, K the payload's first 4 bytes (big-endian) modulo N
  M[...]|drop       the same, but SK_DROP where the selection fails
  migrate:M[K]      expected_attach_type BPF_SK_REUSEPORT_SELECT_OR_MIGRATE: a SYN passes
                    unselected; a migrating request or child (md->migrating_sk) selects M[K]
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from model.sock import Sock, TcpState

SK_DROP, SK_PASS = "SK_DROP", "SK_PASS"


@dataclass(eq=False)
class SockArray:
    """A REUSEPORT_SOCKARRAY: max_entries slots of listening sockets (kernel/bpf/reuseport_array.c)."""

    name: str
    max_entries: int
    slots: dict[int, Sock] = field(default_factory=dict)

    def update(self, key: int, sk: Sock | None) -> tuple[str, str]:
        """bpf_fd_reuseport_array_update_elem (flags BPF_ANY) of sk's descriptor (None: a
        closed one): (errno name or "0", reason), checked in the kernel's order."""
        fn = "bpf_fd_reuseport_array_update_elem"
        if key >= self.max_entries:
            return "E2BIG", f"{fn}: key {key} >= max_entries {self.max_entries}"
        if sk is None:
            return "EBADF", f"{fn}: sockfd_lookup: the descriptor was closed"
        # reuseport_array_update_check: hashed (listening, for TCP) and in a reuseport group
        # (sk_hashed, sk_reuseport_cb); SOCK_RCU_FREE is set by __inet_hash for every listener
        if sk.state != TcpState.LISTEN or sk.reuseport_cb is None:
            why = "not listening" if sk.state != TcpState.LISTEN else "in no reuseport group"
            return "EINVAL", f"reuseport_array_update_check: {sk.name} is {why}"
        if sk.sockarray is not None:
            # READ_ONCE(nsk->sk_user_data): set while it is in any slot, its own one included
            array, slot = sk.sockarray
            return "EBUSY", f"reuseport_array_update_check: {sk.name} is in {array.name}[{slot}] (sk_user_data)"
        old = self.slots.get(key)
        if old is not None and old is not sk:
            old.sockarray = None  # free_osk: its sk_user_data cleared
        self.slots[key] = sk
        sk.sockarray = (self, key)
        replaced = f", replacing {old.name}" if old is not None and old is not sk else ""
        return "0", f"{fn}: {self.name}[{key}] = {sk.name}{replaced}"

    def delete(self, key: int) -> tuple[str, str]:
        """reuseport_array_delete_elem."""
        if key >= self.max_entries:
            return "E2BIG", f"reuseport_array_delete_elem: key {key} >= max_entries {self.max_entries}"
        sk = self.slots.pop(key, None)
        if sk is None:
            return "ENOENT", f"reuseport_array_delete_elem: {self.name}[{key}] is empty"
        sk.sockarray = None
        return "0", f"reuseport_array_delete_elem: {self.name}[{key}] ({sk.name}) removed"


def reuseport_detach(sk: Sock) -> None:
    """bpf_sk_reuseport_detach: sk leaves the map slot it is in (reuseport_detach_sock and
    reuseport_stop_listen_sock call it whenever sk leaves the listening section)."""
    if sk.sockarray is not None:
        array, key = sk.sockarray
        if array.slots.get(key) is sk:
            del array.slots[key]
        sk.sockarray = None


class Shape(enum.Enum):
    PASS = "pass"
    DROP = "drop"
    SELECT = "select"
    MIGRATE = "migrate"


@dataclass(frozen=True)
class EbpfProgram:
    """One program shape as a scenario writes it: its map by name, key and failure action
    (the module docstring lists them)."""

    shape: Shape
    map_name: str = ""
    key: int = 0  # the constant key, or N of payload%N
    payload_mod: bool = False
    fail_drop: bool = False  # SK_DROP where the selection fails (else SK_PASS unselected)
    text: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def migrates(self) -> bool:
        """expected_attach_type is BPF_SK_REUSEPORT_SELECT_OR_MIGRATE."""
        return self.shape is Shape.MIGRATE

    def bind(self, maps: dict[str, SockArray]) -> Attached:
        """The program loaded against one run's maps (BPF_PSEUDO_MAP_FD resolves the name)."""
        return Attached(self, maps.get(self.map_name))


@dataclass(eq=False)
class Attached:
    """A loaded program: its shape and the map it was loaded with."""

    prog: EbpfProgram
    map: SockArray | None

    def __str__(self) -> str:
        return self.prog.text

    @property
    def migrates(self) -> bool:
        return self.prog.migrates

    def run(self, group: object, payload: bytes, family: int, migrating: bool
            ) -> tuple[str, Sock | None, str]:
        """bpf_run_sk_reuseport: (action, selected socket or None, how)."""
        p = self.prog
        if p.shape is Shape.PASS:
            return SK_PASS, None, "SK_PASS, no selection"
        if p.shape is Shape.DROP:
            return SK_DROP, None, "SK_DROP"
        if p.shape is Shape.MIGRATE and not migrating:
            return SK_PASS, None, "no migrating_sk: SK_PASS, no selection"
        assert self.map is not None
        fail = SK_DROP if p.fail_drop else SK_PASS
        if p.payload_mod:
            if len(payload) < 4:
                return fail, None, f"fewer than 4 payload bytes: {fail}, no selection"
            word = int.from_bytes(payload[:4], "big")
            key, how = word % p.key, f"payload {word:#x} % {p.key} = {word % p.key}; "
        else:
            key, how = p.key, ""
        err, sk = sk_select_reuseport(self.map, key, group, family)
        if err:
            return fail, None, f"{how}bpf_sk_select_reuseport({self.map.name}[{key}]) = -{err}: {fail}, no selection"
        assert sk is not None
        return SK_PASS, sk, f"{how}bpf_sk_select_reuseport({self.map.name}[{key}]) = {sk.name}: SK_PASS"


def sk_select_reuseport(array: SockArray, key: int, group: object, family: int) -> tuple[str, Sock | None]:
    """filter.c:sk_select_reuseport: ("" and the socket) or an errno name."""
    sk = array.slots.get(key)  # reuseport_array_lookup_elem: NULL past max_entries too
    if sk is None:
        return "ENOENT", None
    if sk.reuseport_cb is None:
        return "ENOENT", None
    if sk.reuseport_cb is not group:  # reuse->reuseport_id != reuse_kern->reuseport_id
        # sk_protocol is TCP on both sides here
        return ("EAFNOSUPPORT" if sk.family != family else "EBADFD"), None
    return "", sk


_SELECT = re.compile(r"(?:(?P<migrate>migrate):)?(?P<map>[A-Za-z_]\w*)\[(?P<key>[^\]]*)\](?P<drop>\|drop)?")
KEY_MAX = 0xFFFFFFFF  # the key is a u32 on the program's stack


def parse_ebpf(text: str, maps: set[str]) -> EbpfProgram:
    """'pass', 'drop', 'M[K]', 'M[payload%N]', either with '|drop', or 'migrate:M[K]';
    ValueError (with what was expected) otherwise."""
    text = text.strip()
    if text in ("pass", "drop"):
        return EbpfProgram(Shape(text), text=text)
    m = _SELECT.fullmatch(text)
    if not m:
        raise ValueError(f"expected an eBPF program: pass, drop, MAP[K], MAP[payload%N], MAP[...]|drop "
                         f"or migrate:MAP[K], got {text[:40]!r}")
    name = m.group("map")
    if name not in maps:
        raise ValueError(f"unknown map {name!r}; create it first with '{name} = sockarray(N)'")
    key_text = m.group("key").strip()
    payload_mod = key_text.startswith("payload%")
    digits = key_text.removeprefix("payload%")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 10) or int(digits) > KEY_MAX:
        raise ValueError(f"expected a key 0..{KEY_MAX} or payload%N, got {key_text[:20]!r}")
    key = int(digits)
    if payload_mod and key == 0:
        raise ValueError("payload%0 divides by zero; expected payload%N with N >= 1")
    if m.group("migrate") and (m.group("drop") or payload_mod):
        # a migration runs on the closing listener's own skb, or on none (alloc_skb(0)):
        # no payload to key on
        raise ValueError("migrate:MAP[K] takes a constant key and no |drop")
    shape = Shape.MIGRATE if m.group("migrate") else Shape.SELECT
    return EbpfProgram(shape, name, key, payload_mod, bool(m.group("drop")), text)
