"""What model.kernel.Kernel keeps, as its mixins (model/connections.py, model/handshakes.py)
read it: annotations for type checkers only, nothing at run time."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.bind import BindTables
    from model.connect import ConnectSearch, ConnKey
    from model.ephemeral import PortFinder
    from model.host import Host
    from model.listen import ListenTables
    from model.lookup import Lookup
    from model.outcome import Outcome, PortChoice
    from model.profiles import Profile
    from model.sock import Sock
    from model.sysctl import Sysctls


class KernelState:
    """The namespace's tables and counters; Kernel (a dataclass) defines and fills them."""

    if TYPE_CHECKING:
        profile: Profile
        host: Host
        sysctls: Sysctls
        cpu: int
        socks: list[Sock]
        binds: BindTables
        listens: ListenTables
        lookup: Lookup
        ehash: dict[ConnKey, Sock]  # a model.connect.EHash
        port_finder: PortFinder
        connect_search: ConnectSearch
        tw_count: int
        injected: int
        unswept: int
        half_open: dict[ConnKey, str]
        hash_dependent: bool
        search_random: bool
        search_may_fail: bool
        _rng: random.Random
        _seen: dict[tuple, Sock]

        def _sock(self, fd: int) -> Sock | None: ...
        def _ebadf(self, fd: int) -> Outcome: ...
        def _pick(self, candidates: PortChoice | None, choice: int | None) -> int | None: ...
        def _new_child(self, listener: Sock, local: object, remote: object, rport: int,
                       peer: Sock | None, key: ConnKey | None = None) -> Sock: ...
        def _listen_stop_child(self, child: Sock) -> None: ...
        def _unhash_conn(self, sk: Sock) -> None: ...
        def _put_port(self, sk: Sock) -> None: ...
