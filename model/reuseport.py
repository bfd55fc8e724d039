"""struct sock_reuseport: the group of listeners that share a port (net/core/sock_reuseport.c)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.cbpf import Program
from model.ebpf import Attached, reuseport_detach
from model.jhash import reciprocal_scale
from model.sock import Sock, TcpState


@dataclass(eq=False)
class ReuseportGroup:
    """socks[0:num_socks] are listening, in listen() order as the kernel keeps them.

    incoming_cpu counts members with SO_INCOMING_CPU >= 0: while it is 0 the hash alone picks.
    """

    bind_inany: bool
    socks: list[Sock] = field(default_factory=list)
    closed: list[Sock] = field(default_factory=list)  # the closed section (tcp_migrate_req)
    incoming_cpu: int = 0
    prog: Program | Attached | None = None  # cBPF or eBPF (SO_ATTACH_REUSEPORT_*)
    synq_overflow: bool = False  # synq_overflow_ts: a member sent a cookie (tcp_synq_overflow)
    has_conns: bool = False  # reuseport_has_conns_set: a member (UDP) was connect()ed
    _described: str | None = field(default=None, repr=False)  # describe() until socks[] changes

    @property
    def num_socks(self) -> int:
        return len(self.socks)

    @property
    def num_closed_socks(self) -> int:
        return len(self.closed)

    def describe(self) -> str:
        """socks[] for reasons: whole when short, else its ends (reasons are made per SYN, so
        the text is kept until socks[] changes)."""
        if self._described is not None:
            return self._described
        n = len(self.socks)
        if n <= 8:
            text = "[" + ", ".join(s.name for s in self.socks) + "]"
        else:
            head = ", ".join(s.name for s in self.socks[:4])
            text = f"[{head}, ..., {self.socks[-2].name}, {self.socks[-1].name}] ({n} sockets)"
        self._described = text
        return text


def _get_incoming_cpu(sk: Sock, group: ReuseportGroup) -> None:
    """reuseport_get_incoming_cpu."""
    if sk.incoming_cpu >= 0:
        group.incoming_cpu += 1


def _put_incoming_cpu(sk: Sock, group: ReuseportGroup) -> None:
    """reuseport_put_incoming_cpu."""
    if sk.incoming_cpu >= 0:
        group.incoming_cpu -= 1


def reuseport_alloc(sk: Sock, bind_inany: bool) -> None:
    """reuseport_alloc: a new group with sk as socks[0]; if sk already has one (a program was
    attached before listen()), keep it and only raise bind_inany; if that group has closed
    members, sk was shutdown() in it: it is resurrected into a group of its own."""
    if sk.reuseport_cb is not None:
        if sk.reuseport_cb.num_closed_socks:
            # sock_reuseport.c:reuseport_alloc: "sk was shutdown()ed before"
            reuseport_resurrect(sk, sk.reuseport_cb, None, bind_inany)
            return
        if bind_inany:
            sk.reuseport_cb.bind_inany = True
        return
    group = ReuseportGroup(bind_inany=bind_inany, socks=[sk])  # a new group: no text yet
    _get_incoming_cpu(sk, group)
    sk.reuseport_cb = group


def reuseport_add_sock(sk: Sock, sk2: Sock, bind_inany: bool) -> str | None:
    """reuseport_add_sock: sk joins sk2's group at the end of socks[]; sk's own one-socket
    group (from an attached program) is dropped. Returns an errno name on failure."""
    if sk2.reuseport_cb is None:
        reuseport_alloc(sk2, bind_inany)
    group = sk2.reuseport_cb
    assert group is not None
    old = sk.reuseport_cb
    if old is not None and old.num_closed_socks:
        # sock_reuseport.c:reuseport_add_sock: "sk was shutdown()ed before"
        reuseport_resurrect(sk, old, group, group.bind_inany)
        return None
    if old is not None and old.num_socks != 1:
        return "EBUSY"
    group.socks.append(sk)  # __reuseport_add_sock
    group._described = None
    _get_incoming_cpu(sk, group)
    sk.reuseport_cb = group
    return None


def reuseport_resurrect(sk: Sock, old: ReuseportGroup, group: ReuseportGroup | None,
                        bind_inany: bool) -> None:
    """reuseport_resurrect: listen() again after shutdown() (tcp_migrate_req kept sk in the
    closed section of `old`). Back into the same group's listening section, at the end of
    socks[]; or into `group`, the one it now joins; or, with none to join, into a new group
    of its own (a program attached to `old` is not carried over)."""
    _detach_closed(sk, old)  # __reuseport_detach_closed_sock
    if group is None:
        group = ReuseportGroup(bind_inany=bind_inany)  # __reuseport_alloc
    group.socks.append(sk)  # __reuseport_add_sock
    group._described = None
    _get_incoming_cpu(sk, group)
    sk.reuseport_cb = group


def _detach_closed(sk: Sock, group: ReuseportGroup) -> None:
    """__reuseport_detach_closed_sock: a closed member counts in incoming_cpu too (b261eda84ec1,
    v6.2-rc1: __reuseport_add_closed_sock calls reuseport_get_incoming_cpu)."""
    if sk in group.closed:  # reuseport_sock_index(sk, reuse, true) == -1: nothing to do
        group.closed.remove(sk)
        _put_incoming_cpu(sk, group)


def _detach_listening(sk: Sock, group: ReuseportGroup) -> None:
    """__reuseport_detach_sock: the last listening socket moves into sk's slot."""
    i = group.socks.index(sk)
    last = group.socks.pop()
    if last is not sk:
        group.socks[i] = last
    group._described = None
    _put_incoming_cpu(sk, group)


def reuseport_detach_sock(sk: Sock) -> None:
    """reuseport_detach_sock: out of the closed section if there, else out of socks[]."""
    group = sk.reuseport_cb
    if group is None:
        return
    reuseport_detach(sk)  # bpf_sk_reuseport_detach: out of its REUSEPORT_SOCKARRAY slot
    sk.reuseport_cb = None
    if sk in group.closed:
        _detach_closed(sk, group)
    elif sk in group.socks:
        _detach_listening(sk, group)


def reuseport_stop_listen_sock(sk: Sock, migrate: bool) -> None:
    """reuseport_stop_listen_sock: with net.ipv4.tcp_migrate_req, or a program attached as
    BPF_SK_REUSEPORT_SELECT_OR_MIGRATE, sk moves from the listening section to the closed one
    (__reuseport_detach_sock + __reuseport_add_closed_sock) and keeps its group, so its
    connections can be migrated; else it leaves the group at once. Either way it leaves its
    REUSEPORT_SOCKARRAY slot (bpf_sk_reuseport_detach)."""
    group = sk.reuseport_cb
    if group is None:
        return
    migrate = migrate or (isinstance(group.prog, Attached) and group.prog.migrates)
    if migrate and sk in group.socks:
        reuseport_detach(sk)
        _detach_listening(sk, group)
        group.closed.append(sk)  # __reuseport_add_closed_sock
        _get_incoming_cpu(sk, group)
        return
    reuseport_detach_sock(sk)


def reuseport_migrate_sock(sk: Sock, hash_: int | None, cpu: int, migrate: bool,
                           pick: object = None) -> tuple[Sock | None, str]:
    """reuseport_migrate_sock: a program attached as BPF_SK_REUSEPORT_SELECT_OR_MIGRATE runs
    with md->migrating_sk (its selection, else the hash; SK_DROP: no migration); without one,
    with tcp_migrate_req, a listener of sk's group chosen by the migrating socket's hash (its
    sk_hash: the ehash of its 4-tuple). `pick` chooses instead when the hash is unknown (the
    caller follows the kernel)."""
    group = sk.reuseport_cb
    if group is None:
        return None, "no reuseport group"
    if not group.num_socks:
        return None, "no listener left in the group"
    prog = group.prog
    if isinstance(prog, Attached) and prog.migrates:
        action, chosen, how = prog.run(group, b"", group.socks[0].family, migrating=True)
        if action != "SK_PASS":
            return None, f"the program's {how}"
        if chosen is not None:
            return chosen, f"the program's {how}"
        if hash_ is None:
            return pick(group.socks), f"the program's {how}; one of the group (hash unknown)"  # type: ignore[operator]
        chosen, by = reuseport_select_sock_by_hash(group, hash_, cpu)
        return chosen, f"the program's {how}; by hash: {by}"
    if not migrate:
        return None, "tcp_migrate_req=0"
    if hash_ is None:
        return pick(group.socks), "one of the group (hash unknown)"  # type: ignore[operator]
    chosen, how = reuseport_select_sock_by_hash(group, hash_, cpu)
    return chosen, f"by hash: {how}"


def reuseport_update_incoming_cpu(sk: Sock, val: int) -> None:
    """reuseport_update_incoming_cpu: SO_INCOMING_CPU, and the group's count of such members."""
    old = sk.incoming_cpu
    sk.incoming_cpu = val
    group = sk.reuseport_cb
    if group is None:
        return
    if old < 0 and val >= 0:
        group.incoming_cpu += 1
    elif old >= 0 and val < 0:
        group.incoming_cpu -= 1


def reuseport_select_sock_by_hash(group: ReuseportGroup, hash_: int, cpu: int,
                                  incoming_cpu: bool = True) -> tuple[Sock | None, str]:
    """reuseport_select_sock_by_hash (6.1+): socks[reciprocal_scale(hash, n)], or with members
    on SO_INCOMING_CPU the first from there on whose CPU is this one, else the first valid.
    Without incoming_cpu (profile reuseport_incoming_cpu, before 6.1) reuseport_select_sock's
    select_by_hash: the first from the hash index on that is not ESTABLISHED, whatever the
    members' SO_INCOMING_CPU (5.10 net/core/sock_reuseport.c)."""
    socks = group.socks
    n = len(socks)
    i = j = reciprocal_scale(hash_, n)
    first_valid = None
    by_cpu = incoming_cpu and group.incoming_cpu
    while True:
        sk = socks[i]
        if sk.state is not TcpState.ESTABLISHED:
            if not by_cpu:
                return sk, f"reciprocal_scale(hash, {n}) = {j}"
            if sk.incoming_cpu == cpu:
                return sk, f"hash index {j}, scanned to {i}: SO_INCOMING_CPU {cpu}"
            if first_valid is None:
                first_valid = sk
        i += 1
        if i >= n:
            i = 0
        if i == j:
            return first_valid, f"hash index {j}: no member on CPU {cpu}, the hash's socket"
