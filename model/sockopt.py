"""Socket options the model understands, and what setting them does (net/core/sock.c)."""

from __future__ import annotations

import enum

from model.sock import SK_CAN_REUSE, SK_NO_REUSE, Sock


class SockOpt(enum.Enum):
    """Options by the name scenarios use; the value is (level name, option name)."""

    SO_REUSEADDR = ("SOL_SOCKET", "SO_REUSEADDR")
    SO_REUSEPORT = ("SOL_SOCKET", "SO_REUSEPORT")


def setsockopt(sk: Sock, opt: SockOpt, value: int) -> str:
    """sk_setsockopt for the option; returns the reason line. Flags may change at any time:
    the bind bucket's fast-path copy keeps the old value until the next get_port."""
    valbool = value != 0
    if opt is SockOpt.SO_REUSEADDR:
        sk.reuse = SK_CAN_REUSE if valbool else SK_NO_REUSE  # sk_setsockopt: SO_REUSEADDR
        return f"sk_setsockopt: sk_reuse = {'SK_CAN_REUSE' if valbool else 'SK_NO_REUSE'}"
    if opt is SockOpt.SO_REUSEPORT:
        sk.reuseport = valbool  # sk_setsockopt: SO_REUSEPORT (inet sockets)
        return f"sk_setsockopt: sk_reuseport = {int(valbool)}"
    raise ValueError(f"unsupported option {opt}")
