"""A namespace's reuseport hash secrets: the probes that observe SYN and datagram -> socks[]
picks in its worker (probe_reuseport, probe_udp_reuseport), and their search for the secret.

The kernel picks socks[reciprocal_scale(inet_ehashfn(...), num_socks)]; the only unknown is the
32-bit secret (inet_ehash_secret + net_hash_mix(net)), so every candidate is tried. The numba
functions below transcribe model/jhash.py (the one Python source of the formula); a unit test
proves the two agree. Both kernel variants share one jitted hash: (add + jhash_3words(la, fa, w3,
secret)) with add = 0 before 6.15 and add = lport from 6.15 on.

Jitted code runs in a helper thread while the calling thread waits in plain Python (see _call):
Python runs signal handlers in the main thread, and numba's code calls back into Python when it
boxes the arrays it returns, without checking for an exception, so a Ctrl-C or SIGTERM handler
raising there made a broken result (a segfault, or a SystemError). The waiting thread takes the
signal at once and sets `stop`, which the search reads once per block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange, typeof

from harness._numba_cache import CACHE
from harness.inject import SYNACK_ACKED, Flow, TunInjector, pin_to_cpu
from harness.kernel_backend import LINGER_RESET, peer_key
from harness.signals import deferred
from model.jhash import ipv4_word, port_word

U32 = 0xFFFFFFFF
FULL_RANGE = 1 << 32
_BLOCK = 4096  # candidates hashed per vectorised pass (the mask stays in L1)
_CHUNKS = 64  # prange work units over [lo, hi) (64 measured fastest on 2 cores)
_CAP = 64  # matches kept per chunk; a chunk with more is searched again with room for all
# tests: search all of [0, 2**32) this many times, saying on stderr once it is under way (a window to signal)
PASSES_ENV = "SOCKH_CALIBRATE_PASSES"


@dataclass(frozen=True)
class Observation:
    """One SYN from saddr:sport to daddr:dport that landed on socks[index] of a num_socks group."""

    saddr: str
    sport: int
    daddr: str
    dport: int
    num_socks: int
    index: int


# ---- numba transcription of model/jhash.py (int64 holding u32 values, masked after each step)


@njit(cache=CACHE, inline="always")
def _rol32(x, s):
    """rol32 for a u32 held in an int64."""
    # include/linux/bitops.h:rol32
    return ((x << s) | (x >> (32 - s))) & U32


@njit(cache=CACHE, inline="always")
def _jhash_final(a, b, c):
    """__jhash_final; returns c."""
    # include/linux/jhash.h:__jhash_final
    c = ((c ^ b) - _rol32(b, 14)) & U32
    a = ((a ^ c) - _rol32(c, 11)) & U32
    b = ((b ^ a) - _rol32(a, 25)) & U32
    c = ((c ^ b) - _rol32(b, 16)) & U32
    a = ((a ^ c) - _rol32(c, 4)) & U32
    b = ((b ^ a) - _rol32(a, 14)) & U32
    c = ((c ^ b) - _rol32(b, 24)) & U32
    return c


@njit(cache=CACHE, inline="always")
def _ehash(secret, la, fa, w3, add):
    """inet_ehashfn on prepared words: add + jhash_3words(la, fa, w3, secret), u32."""
    # include/linux/jhash.h:jhash_3words; net/ipv4/inet_hashtables.c:inet_ehashfn
    iv = (secret + 0xDEADBEEF + (3 << 2)) & U32
    c = _jhash_final((la + iv) & U32, (fa + iv) & U32, (w3 + iv) & U32)
    return (c + add) & U32


@njit(cache=CACHE, inline="always")
def _reciprocal_scale(val, ep_ro):
    """reciprocal_scale for ep_ro <= 0xffff (so the product fits an int64)."""
    # include/linux/math.h:reciprocal_scale
    return (val * ep_ro) >> 32


@njit(cache=CACHE)
def _fits_rest(secret, la, fa, w3, add, n, idx):
    """True when secret reproduces observations 1.. (observation 0 was checked by the caller)."""
    for k in range(1, la.shape[0]):
        h = _ehash(secret, np.int64(la[k]), np.int64(fa[k]), np.int64(w3[k]), np.int64(add[k]))
        if _reciprocal_scale(h, np.int64(n[k])) != idx[k]:
            return False
    return True


@njit(cache=CACHE)
def _scan_range(start, end, la, fa, w3, add, n, idx, off, wm1, out, stop):
    """Search [start, end): write up to len(out) matching secrets into out, return how many match.

    Observation 0 is tested for a whole block without branches (so LLVM vectorises the hash),
    as the window test (c - off) mod 2**32 <= wm1; survivors are checked against the rest.
    A nonzero stop[0] (set by another thread) ends the search at the next block.
    """
    la0, fa0, w30 = np.int64(la[0]), np.int64(fa[0]), np.int64(w3[0])
    mask = np.zeros(_BLOCK, np.uint8)
    words = mask.view(np.uint64)  # skip 8 rejected candidates at a time
    count = 0
    for base in range(start, end, _BLOCK):
        if stop[0]:
            break
        m = min(_BLOCK, end - base)
        for j in range(m):
            c = _ehash(base + j, la0, fa0, w30, 0)
            mask[j] = np.uint32(c - off) <= np.uint32(wm1)  # u32 compare: LLVM keeps 32-bit lanes
        for w in range((m + 7) // 8):
            if words[w] == 0:
                continue
            for j in range(w * 8, min(m, w * 8 + 8)):
                if mask[j] and _fits_rest(base + j, la, fa, w3, add, n, idx):
                    if count < out.shape[0]:
                        out[count] = base + j
                    count += 1
    return count


@njit(cache=CACHE, parallel=True, nogil=True)
def _search(starts, ends, la, fa, w3, add, n, idx, off, wm1, cap, stop):
    """Run _scan_range over each chunk in parallel; returns (counts, matches[chunk, :cap])."""
    nchunks = starts.shape[0]
    counts = np.zeros(nchunks, np.int64)
    found = np.zeros((nchunks, cap), np.int64)
    for ch in prange(nchunks):
        counts[ch] = _scan_range(starts[ch], ends[ch], la, fa, w3, add, n, idx, off, wm1, found[ch], stop)
    return counts, found


# ---- Python side: jitted code in a helper thread, observations to u32 words, the window for
# observation 0, the chunking


def _call(fn, *args, stop: np.ndarray | None = None):
    """fn(*args) for a jitted fn, run in a helper thread while this one waits in plain Python.

    Compiling (or loading from numba's cache) happens here first, with signals held until it
    is done. A signal's handler then runs in this thread, never inside numba's code (it
    boxes results by calling Python, numba/core/pythonapi.py:nrt_adapt_ndarray_to_python,
    without an error check); if it raises, stop[0] is set and the helper awaited first.
    """
    if not fn.signatures:  # each fn here has one signature; another would compile in the helper
        # held meanwhile: numba reads its cache through a ctypes callback, where a handler's
        # KeyboardInterrupt is printed ("Exception ignored") and lost; it comes right after
        with deferred():
            fn.compile(tuple(typeof(a) for a in args))
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    helper = threading.Thread(target=run, name=f"calibrate {fn.__name__}", daemon=True)
    try:
        helper.start()
        done.wait()
    except BaseException:
        if stop is not None:
            stop[0] = 1
        if helper.is_alive():  # not yet alive: it stops at its first block, or was never started
            done.wait()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def _words(observations: Sequence[Observation], lport_outside: bool) -> tuple[np.ndarray, ...]:
    """Observations as u32 arrays (laddr, faddr, third jhash word, added lport, n, index)."""
    # net/ipv4/inet_hashtables.c:inet_lookup_reuseport hashes (daddr, hnum, saddr, sport)
    rows = [_row(o, lport_outside) for o in observations]
    return tuple(np.array(col, dtype=np.uint32) for col in zip(*rows, strict=True))


def _row(o: Observation, lport_outside: bool) -> tuple[int, int, int, int, int, int]:
    """One observation's words; before 6.15 lport sits in the jhash word, from 6.15 it is added."""
    if not 1 <= o.num_socks <= 0xFFFF or not 0 <= o.index < o.num_socks:
        raise ValueError(f"index {o.index} outside a group of {o.num_socks}: {o}")
    if not (0 <= o.sport <= 0xFFFF and 0 <= o.dport <= 0xFFFF):
        raise ValueError(f"port out of range: {o}")
    la, fa, fp = ipv4_word(o.daddr), ipv4_word(o.saddr), port_word(o.sport)
    if lport_outside:
        return la, fa, fp, o.dport, o.num_socks, o.index
    return la, fa, (o.dport << 16) | fp, 0, o.num_socks, o.index


def _first_window(add: int, num_socks: int, index: int) -> tuple[int, int]:
    """(off, wm1) with reciprocal_scale(add + c, n) == index  <=>  (c - off) mod 2**32 <= wm1.

    reciprocal_scale(h, n) == i exactly when ceil(i * 2**32 / n) <= h < ceil((i + 1) * 2**32 / n).
    """
    low = -(-index * FULL_RANGE // num_socks)
    high = -(-(index + 1) * FULL_RANGE // num_socks)
    return (low - add) & U32, high - low - 1


def _chunks(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Split [lo, hi) into _CHUNKS contiguous pieces (some empty when the range is tiny)."""
    edges = [lo + (hi - lo) * k // _CHUNKS for k in range(_CHUNKS + 1)]
    return np.array(edges[:-1], dtype=np.int64), np.array(edges[1:], dtype=np.int64)


def calibrate(
    observations: Sequence[Observation], lport_outside: bool, lo: int = 0, hi: int = FULL_RANGE
) -> list[int]:
    """Every secret in [lo, hi) that reproduces ALL observations, ascending; [] means none fits."""
    if not observations:
        raise ValueError("calibrate needs at least one observation")
    if not 0 <= lo <= hi <= FULL_RANGE:
        raise ValueError(f"search range [{lo}, {hi}) is not inside [0, 2**32)")
    la, fa, w3, add, n, idx = _words(observations, lport_outside)
    off, wm1 = _first_window(int(add[0]), int(n[0]), int(idx[0]))
    starts, ends = _chunks(lo, hi)
    stop = np.zeros(1, np.uint8)
    hooked = PASSES_ENV in os.environ and (lo, hi) == (0, FULL_RANGE)
    passes = max(1, int(os.environ[PASSES_ENV])) if hooked else 1
    for k in range(passes):
        counts, found = _call(_search, starts, ends, la, fa, w3, add, n, idx, off, wm1, _CAP, stop, stop=stop)
        if k == 0 and hooked:  # compiled, searched once: the next search is under way
            print(f"calibrate: searching [{lo}, {hi}) {passes} time(s)", file=sys.stderr, flush=True)
    result: list[int] = []
    for ch in range(_CHUNKS):
        if counts[ch] <= _CAP:
            result.extend(int(s) for s in found[ch, : counts[ch]])
            continue
        out = np.zeros(int(counts[ch]), dtype=np.int64)  # overflowed: search this chunk again
        _call(_scan_range, starts[ch], ends[ch], la, fa, w3, add, n, idx, off, wm1, out, stop, stop=stop)
        result.extend(int(s) for s in out)
    return sorted(result)


def jit_inet_ehashfn(secret: int, laddr: str, lport: int, faddr: str, fport: int, lport_outside: bool) -> int:
    """The numba hash through calibrate's own conversion; must equal model.jhash.inet_ehashfn."""
    obs = Observation(saddr=faddr, sport=fport, daddr=laddr, dport=lport, num_socks=1, index=0)
    la, fa, w3, add, _, _ = _words([obs], lport_outside)
    return int(_call(_ehash, secret & U32, np.int64(la[0]), np.int64(fa[0]), np.int64(w3[0]), np.int64(add[0])))


def jit_reuseport_index(
    secret: int, saddr: str, sport: int, daddr: str, dport: int, num_socks: int, lport_outside: bool
) -> int:
    """The numba socks[] pick; must equal model.jhash.reuseport_index."""
    h = jit_inet_ehashfn(secret, daddr, dport, saddr, sport, lport_outside)
    return int(_call(_reciprocal_scale, np.int64(h), np.int64(num_socks)))


def warm_up() -> None:
    """Compile (or load from numba's cache) every jitted function, so callers can time it apart."""
    obs = [Observation("192.0.2.1", 1, "10.0.0.1", 1, 2, 0), Observation("192.0.2.2", 2, "10.0.0.1", 1, 2, 1)]
    calibrate(obs, lport_outside=False, lo=0, hi=_CHUNKS * 4)
    la, fa, w3, add, n, idx = _words(obs, False)
    _call(_scan_range, 0, 4, la, fa, w3, add, n, idx, 0, U32, np.zeros(0, dtype=np.int64), np.zeros(1, np.uint8))
    jit_reuseport_index(0, "192.0.2.1", 1, "10.0.0.1", 1, 2, lport_outside=True)


# A guest under emulation asks its host to search (harness/guests/offload.py:Server): the
# folder the host watches, and how long to wait for its answer before searching here.
OFFLOAD_ENV = "SOCKH_CALIBRATE_DIR"
OFFLOAD_WAIT = 120.0


def calibrate_here_or_host(observations: Sequence[Observation], lport_outside: bool) -> list[int]:
    """calibrate(); in a guest whose host serves requests, by the host."""
    folder = os.environ.get(OFFLOAD_ENV)
    if not folder:
        return calibrate(observations, lport_outside)
    name = uuid.uuid4().hex
    request, reply = Path(folder) / f"{name}.request.json", Path(folder) / f"{name}.reply.json"
    tmp = request.with_suffix(".tmp")
    tmp.write_text(json.dumps({"lport_outside": lport_outside,
                               "observations": [dataclasses.asdict(o) for o in observations]}))
    tmp.rename(request)
    deadline = time.monotonic() + OFFLOAD_WAIT
    while time.monotonic() < deadline:
        if reply.exists():
            fits = json.loads(reply.read_text())["fits"]
            reply.unlink()
            return fits
        time.sleep(0.02)
    request.unlink(missing_ok=True)
    return calibrate(observations, lport_outside)


# -- the probe: observations of a namespace's hash (in its worker) ----------------------------

PROBE_ADDR, PROBE_PORT, PROBE_GROUP = "10.0.0.2", 65000, 256
UDP_PROBE_PORT = 65001  # the UDP probe's group: udp_ehashfn has a secret of its own


def probe_flows(count: int, port: int = PROBE_PORT) -> list[Flow]:
    """Fixed, varied client tuples for calibration."""
    return [Flow(f"198.18.{(i * 37) % 250 + 1}.{(i * 91) % 250 + 1}", 20000 + i * 7919 % 40000,
                 PROBE_ADDR, port) for i in range(count)]


@contextlib.contextmanager
def _probe_group(tun_fds: dict[str, int], kind: int, port: int):
    """PROBE_GROUP SO_REUSEPORT sockets of `kind` on PROBE_ADDR:port (listening, for TCP) and
    an injector, on CPU 0; all closed and drained afterwards."""
    members: list[socket.socket] = []
    injector = TunInjector(tun_fds)
    try:
        for _ in range(PROBE_GROUP):
            s = socket.socket(socket.AF_INET, kind)
            members.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((PROBE_ADDR, port))
            if kind == socket.SOCK_STREAM:
                s.listen(64)
        pin_to_cpu(0)
        yield members, injector
    finally:
        for s in members:
            s.close()
        injector.drain()
        injector.close()


def _observations(flows: list[Flow], index_of: dict[tuple[str, int], int]) -> list[Observation]:
    missing = [f for f in flows if (f.src, f.sport) not in index_of]
    if missing:
        raise RuntimeError(f"calibration flows that reached no member: {missing}")
    return [Observation(f.src, f.sport, f.dst, f.dport, PROBE_GROUP, index_of[(f.src, f.sport)])
            for f in flows]


def probe_udp_reuseport(tun_fds: dict[str, int], count: int = 8) -> list[Observation]:
    """Which of 256 SO_REUSEPORT UDP sockets (socks[] = bind order: udp_reuseport_add_sock
    appends) each of `count` datagrams reached: the observations that pin the namespace's
    udp_ehashfn secret (udp_ehash_secret + net_hash_mix; the pre-6.15 inet_ehashfn form on
    every kernel, net/ipv4/udp.c:udp_ehashfn)."""
    from harness.inject_udp import datagram_key, port_unreachable_key, udp_bytes

    with _probe_group(tun_fds, socket.SOCK_DGRAM, UDP_PROBE_PORT) as (members, injector):
        flows = probe_flows(count, UDP_PROBE_PORT)
        injector.exchange([(f, datagram_key(f), udp_bytes(f)) for f in flows], port_unreachable_key)
        index_of = {}
        for i, s in enumerate(members):
            with contextlib.suppress(BlockingIOError):
                while True:
                    _, addr = s.recvfrom(64, socket.MSG_DONTWAIT)
                    index_of[peer_key(*addr[:2])] = i
        return _observations(flows, index_of)


def probe_reuseport(tun_fds: dict[str, int], count: int = 8) -> list[Observation]:
    """Which of 256 SO_REUSEPORT listeners (socks[] = listen order) each of `count` SYNs
    reached: the observations that pin the namespace's inet_ehashfn secret."""
    with _probe_group(tun_fds, socket.SOCK_STREAM, PROBE_PORT) as (listeners, injector):
        flows = probe_flows(count)
        results = injector.handshake(flows)
        if any(r.kind != SYNACK_ACKED for r in results):
            raise RuntimeError(f"calibration handshakes failed: {[r.kind for r in results]}")
        index_of = {}
        for i, s in enumerate(listeners):
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    child, addr = s.accept()
                    index_of[peer_key(*addr[:2])] = i
                    child.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                    child.close()
        return _observations(flows, index_of)
