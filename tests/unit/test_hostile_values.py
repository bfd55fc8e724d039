"""Values at and past the kernel's limits: a parse error where a C program could not pass the
value (or the kernel refuses a sysctl), else the kernel's own outcome from the model; never a
crash. The expectations below were recorded on this host's booted 6.18 kernel
(tests/kernel/test_hostile_values.py runs the same scenarios there)."""

from __future__ import annotations

import pytest

from harness.kernel_backend import NOT_RUN, Job, KernelExecutor, harness_error
from harness.parser import ScenarioError, parse_text
from harness.runner import Backend, Runner
from harness.scenario import ListenStep, SetsockoptStep, SocketStep
from harness.worker import _run_job
from model.cbpf import Kind, parse_program
from model.profiles import LINUX_6_18
from model.sockopt import option_int
from model.sysctl import Sysctls, proc_text

SOCK = "a = socket(AF_INET, SOCK_STREAM)\n"


@pytest.mark.parametrize("text, where, says", [
    # listen(2) takes a C int (Python's sock.listen raised OverflowError in the worker)
    (SOCK + "listen(a, 4294967296)\n", (2, 11), "fits a C int"),
    (SOCK + "listen(a, 2147483648)\n", (2, 11), "fits a C int"),
    (SOCK + "listen(a, -2147483649)\n", (2, 11), "fits a C int"),
    # setsockopt's int is 4 bytes (Python's setsockopt raised TypeError in the worker)
    (SOCK + "setsockopt(a, SO_REUSEPORT, 4294967296)\n", (2, 29), "fits a C int or unsigned int"),
    (SOCK + "setsockopt(a, SO_INCOMING_CPU, -2147483649)\n", (2, 32), "fits a C int or unsigned int"),
    # uid_t is a u32 and (uid_t)-1 is refused by seteuid (the worker raised OSError EINVAL)
    ("a = socket(AF_INET, SOCK_STREAM, uid=4294967295)\n", (1, 34), "a uid 0..4294967294"),
    ("a = socket(AF_INET, SOCK_STREAM, uid=4294967296)\n", (1, 34), "a uid 0..4294967294"),
    ("a = socket(AF_INET, SOCK_STREAM, uid=-1)\n", (1, 34), "a uid 0..4294967294"),
    # a BPF K is a u32 (struct.pack raised in the worker)
    (SOCK + "setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, payload%4294967296)\n", (2, 41), "a BPF K is a u32"),
    (SOCK + "setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, 4294967296)\n", (2, 41), "a BPF K is a u32"),
    (SOCK + "setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, payload%²)\n", (2, 41), "N >= 1"),
    # sysctl values /proc refuses (the worker's write raised OSError EINVAL)
    ("@sysctl net.core.somaxconn = -1\n" + SOCK, (1, 9), "net.core.somaxconn 0..2147483647"),
    ("@sysctl net.core.somaxconn = 2147483648\n" + SOCK, (1, 9), "net.core.somaxconn 0..2147483647"),
    ("@sysctl net.ipv4.tcp_syncookies = 𝟗\n" + SOCK, (1, 9), "expected an integer"),
    ("@sysctl net.ipv4.tcp_syncookies = 256\n" + SOCK, (1, 9), "0..255"),
    ("@sysctl net.ipv6.bindv6only = 256\n" + SOCK, (1, 9), "0..255"),
    ("@sysctl net.ipv4.tcp_migrate_req = 2\n" + SOCK, (1, 9), "0..1"),
    ("@sysctl net.ipv4.ip_autobind_reuse = 2\n" + SOCK, (1, 9), "0..1"),
    ("@sysctl net.ipv4.tcp_max_syn_backlog = 2147483648\n" + SOCK, (1, 9), "-2147483648..2147483647"),
    ("@sysctl net.ipv4.ip_local_reserved_ports = ,,,\n" + SOCK, (1, 9), "expected ports or ranges"),
    ("@sysctl net.ipv4.ip_local_reserved_ports = 65536\n" + SOCK, (1, 9), "ports 0-65535"),
    ("@sysctl net.ipv4.ip_local_port_range = 40000,40003\n" + SOCK, (1, 9), "expected two ports"),
    ("@sysctl net.ipv4.ip_local_port_range = 40000 65536\n" + SOCK, (1, 9), "1..65535"),
    ("@sysctl net.ipv4.ip_local_port_range = 40003 40000\n" + SOCK, (1, 9), "low <= high"),
    # ipv4_local_port_range: the low end may not be below ip_unprivileged_port_start (1024)
    ("@sysctl net.ipv4.ip_local_port_range = 1 65535\n" + SOCK, (1, 9), "ip_unprivileged_port_start (1024)"),
    # ipv4_privileged_ports: nor the other way round, as the settings are written in order
    ("@sysctl net.ipv4.ip_unprivileged_port_start = 40000\n" + SOCK, (1, 9), "ip_local_port_range (32768)"),
    ("@sysctl net.ipv4.ip_unprivileged_port_start = 65536\n" + SOCK, (1, 9), "0..65535"),
    ("@sysctl net.ipv4.ip_local_port_range = 50000 50001\n"
     "@sysctl net.ipv4.ip_unprivileged_port_start = 50001\n" + SOCK, (2, 9), "ip_local_port_range (50000)"),
    ("@sysctl net.core.somaxconn = 1\n@sysctl net.core.somaxconn = 2\n" + SOCK, (2, 9), "already set on line 1"),
])
def test_values_no_c_program_or_kernel_takes_are_parse_errors(text, where, says):
    with pytest.raises(ScenarioError) as e:
        parse_text("h.scn", text)
    assert (e.value.line, e.value.col) == where, str(e.value)
    assert says in e.value.message, e.value.message


def test_the_settings_are_checked_in_the_order_they_are_written():
    """ip_unprivileged_port_start lowered first, a range below 1024 is then taken."""
    sc = parse_text("h.scn", "@sysctl net.ipv4.ip_unprivileged_port_start = 80\n"
                    "@sysctl net.ipv4.ip_local_port_range = 100 101\n" + SOCK)
    assert sc.sysctls == (("net.ipv4.ip_unprivileged_port_start", "80"),
                          ("net.ipv4.ip_local_port_range", "100 101"))
    with pytest.raises(ScenarioError, match="ip_unprivileged_port_start"):
        parse_text("h.scn", "@sysctl net.ipv4.ip_local_port_range = 100 101\n"
                   "@sysctl net.ipv4.ip_unprivileged_port_start = 80\n" + SOCK)


def test_an_int_option_is_the_four_bytes_the_kernel_reads():
    """sk_setsockopt reads an int: 4294967295 is -1, so SO_REUSEPORT is enabled (valbool)."""
    assert option_int(4294967295) == -1 and option_int(2147483648) == -(1 << 31)
    assert option_int(-2147483648) == -(1 << 31) and option_int(7) == 7
    sc = parse_text("h.scn", SOCK + "setsockopt(a, SO_REUSEPORT, 4294967295)\n")
    step = sc.steps[1]
    assert isinstance(step, SetsockoptStep) and step.value == -1


def test_boundary_values_are_accepted():
    sc = parse_text("h.scn", "a = socket(AF_INET, SOCK_STREAM, uid=4294967294)\n"
                    "listen(a, -2147483648)\nlisten(a, 2147483647)\n"
                    "setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, payload%4294967295)\n"
                    "setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, 4294967295)\n")
    assert isinstance(sc.steps[0], SocketStep) and sc.steps[0].uid == 4294967294
    assert [s.backlog for s in sc.steps if isinstance(s, ListenStep)] == [-(1 << 31), (1 << 31) - 1]
    assert parse_program("payload%4294967295").arg == 4294967295
    assert parse_program("4294967295").kind is Kind.CONST


def test_sysctls_are_written_as_the_model_read_them():
    """proc_get_long reads base 0 ('040000' would be 16384) and proc_do_large_bitmap refuses
    a space after a comma: the harness writes the normalised value."""
    assert proc_text("net.ipv4.ip_local_port_range", "040000\t040002") == "40000 40002"
    assert proc_text("net.ipv4.ip_local_reserved_ports", "40000, 040001 ,40003") == "40000-40001,40003"
    assert proc_text("net.core.somaxconn", "010") == "10"
    assert proc_text("net.ipv4.tcp_max_syn_backlog", "-0005") == "-5"
    sc = parse_text("h.scn", "@sysctl net.ipv4.ip_local_port_range = 040000\t040002\n" + SOCK)
    assert Job.of(sc).sysctls == (("net.ipv4.ip_local_port_range", "40000 40002"),)
    s = Sysctls().with_setting("net.ipv4.ip_local_reserved_ports", "40000, 040001")
    assert s.ip_local_reserved_ports == {40000, 40001}


# Recorded on the booted 6.18 kernel (tests/kernel/test_hostile_values.py runs these there).
MODELLED = {
    # __sys_listen_socket: (unsigned int)backlog > somaxconn -> somaxconn, so -1 is somaxconn
    # (1): the accept queue holds 2
    "listen-negative": """@sysctl net.core.somaxconn = 1
a = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 10.0.0.1:8080) = 0
listen(a, -1) = 0
syn(198.18.0.1:40001 > 10.0.0.1:8080) = a
syn(198.18.0.2:40002 > 10.0.0.1:8080) = a
syn(198.18.0.3:40003 > 10.0.0.1:8080) = DROP
queue(a) = 2
""",
    "listen-int-limits": """@sysctl net.core.somaxconn = 2
a = socket(AF_INET, SOCK_STREAM) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 10.0.0.1:8080) = 0
bind(b, 10.0.0.1:8081) = 0
listen(a, 2147483647) = 0
listen(b, -2147483648) = 0
syn(198.18.0.1:40001 > 10.0.0.1:8080) = a
syn(198.18.0.2:40002 > 10.0.0.1:8080) = a
syn(198.18.0.3:40003 > 10.0.0.1:8080) = a
syn(198.18.0.4:40004 > 10.0.0.1:8080) = DROP
syn(198.18.0.5:40005 > 10.0.0.1:8081) = b
syn(198.18.0.6:40006 > 10.0.0.1:8081) = b
syn(198.18.0.7:40007 > 10.0.0.1:8081) = b
syn(198.18.0.8:40008 > 10.0.0.1:8081) = DROP
queue(a) = 3
queue(b) = 3
""",
    # 4294967295 and -2147483648 are nonzero ints: both sockets share the port
    "reuseport-u32": """a = socket(AF_INET, SOCK_STREAM) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(a, SO_REUSEPORT, 4294967295) = 0
setsockopt(b, SO_REUSEPORT, -2147483648) = 0
bind(a, 10.0.0.1:8080) = 0
bind(b, 10.0.0.1:8080) = 0
listen(a, 16) = 0
listen(b, 16) = 0
setsockopt(a, SO_REUSEADDR, 4294967295) = 0
setsockopt(a, SO_INCOMING_CPU, 4294967295) = 0
inuse(tcp) = 2
""",
    "uid-top": """a = socket(AF_INET, SOCK_STREAM, uid=4294967294) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(a, SO_REUSEPORT, 1) = 0
setsockopt(b, SO_REUSEPORT, 1) = 0
bind(a, 10.0.0.1:80) = EACCES
bind(a, 10.0.0.1:8080) = 0
listen(a, 16) = 0
bind(b, 10.0.0.1:8080) = EADDRINUSE
""",
    # every u8 sysctl at 255; tcp_syncookies 255 acts as 1 (tcp_syn_flood_action reads it as
    # a truth value), so the second SYN on a full SYN queue gets a cookie
    "sysctl-maxima": """@sysctl net.core.somaxconn = 2147483647
@sysctl net.ipv4.tcp_syncookies = 255
@sysctl net.ipv4.tcp_timestamps = 255
@sysctl net.ipv4.tcp_abort_on_overflow = 255
@sysctl net.ipv4.ip_nonlocal_bind = 255
@sysctl net.ipv6.ip_nonlocal_bind = 255
@sysctl net.ipv4.tcp_max_syn_backlog = 2147483647
a = socket(AF_INET, SOCK_STREAM) = 0
c = socket(AF_INET6, SOCK_STREAM) = 0
bind(a, 10.9.9.9:8080) = 0
bind(c, [fd09::9]:8080) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
bind(b, 10.0.0.1:8081) = 0
listen(b, 0) = 0
syn_only(198.18.0.1:40001 > 10.0.0.1:8081) = SYNACK
syn_only(198.18.0.2:40002 > 10.0.0.1:8081) = COOKIE
ack(198.18.0.1:40001 > 10.0.0.1:8081) = b
ack(198.18.0.2:40002 > 10.0.0.1:8081) = DROP
""",
    # tcp_conn_request without cookies: max_syn_backlog - qlen < max_syn_backlog >> 2 drops
    "syn-backlog-int-min": """@sysctl net.ipv4.tcp_syncookies = 0
@sysctl net.ipv4.tcp_max_syn_backlog = -2147483648
a = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 10.0.0.1:8080) = 0
listen(a, 16) = 0
syn_only(198.18.0.1:40001 > 10.0.0.1:8080) = DROP
syn_only(198.18.0.2:40002 > 10.0.0.1:8080) = DROP
""",
    # inet6_create stores the u8 in the 1-bit sk_ipv6only: 2 makes a dual-stack socket
    "bindv6only-2": """@sysctl net.ipv6.bindv6only = 2
a = socket(AF_INET6, SOCK_STREAM) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
bind(a, [::]:8080) = 0
bind(b, 0.0.0.0:8080) = EADDRINUSE
""",
    "bindv6only-3": """@sysctl net.ipv6.bindv6only = 3
a = socket(AF_INET6, SOCK_STREAM) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
bind(a, [::]:8080) = 0
bind(b, 0.0.0.0:8080) = 0
""",
    # written as 40000 40002 and 40000-40001 (raw, the range would be octal 16384-16386 and the
    # reserved list refused): no port is left
    "ports-normalised": """@sysctl net.ipv4.ip_local_port_range = 040000\t040002
@sysctl net.ipv4.ip_local_reserved_ports = 40000, 040001
a = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 0.0.0.0:0) = EADDRINUSE
getsockname(a) = 0.0.0.0:0
""",
    "ports-below-1024": """@sysctl net.ipv4.ip_unprivileged_port_start = 80
@sysctl net.ipv4.ip_local_port_range = 100 101
a = socket(AF_INET, SOCK_STREAM, uid=1000) = 0
bind(a, 0.0.0.0:0) = 0
getsockname(a) = 0.0.0.0:101
""",
    # restoring the defaults needs ip_unprivileged_port_start lowered before the range
    "ports-privileged-high": """@sysctl net.ipv4.ip_local_port_range = 50000 50001
@sysctl net.ipv4.ip_unprivileged_port_start = 50000
a = socket(AF_INET, SOCK_STREAM, uid=1000) = 0
bind(a, 10.0.0.1:49999) = EACCES
bind(a, 10.0.0.1:50000) = 0
""",
}


@pytest.mark.parametrize("name", sorted(MODELLED))
def test_the_model_gives_the_kernels_outcome(name):
    sc = parse_text(f"hostile/{name}.scn", MODELLED[name])
    r = Runner(LINUX_6_18, Backend.MODEL).run_one(sc)
    assert r.agreed, [(s.step.line, s.problems) for s in r.divergent]


class _NoInjector:
    """Stands in for the TUN injector: these jobs send no SYN."""

    def __init__(self, tun_fds):
        pass

    def reset(self, results):
        pass

    def drain(self):
        pass


def test_a_step_the_harness_cannot_run_is_that_steps_error_not_a_crash():
    """A step that raises in the executor (here: a socket the executor never made) becomes
    HARNESS_ERROR(...) naming the exception, and the steps after it NOT_RUN."""
    steps = (ListenStep(1, "listen(ghost, 1)", None, "ghost", 1),
             ListenStep(2, "listen(ghost, 2)", None, "ghost", 2))
    # injects=True: the executor's cleanup leaves TIME_WAIT sockets alone (none are made here)
    out = KernelExecutor({}, _NoInjector).run(Job((), 0, steps, injects=True))
    assert out[0].value.startswith("HARNESS_ERROR(KeyError: 'ghost' at kernel_backend.py:"), out[0]
    assert out[1] is NOT_RUN


def test_a_sysctl_the_kernel_refuses_is_the_scenarios_error(monkeypatch):
    """The worker's _run_job turns a refused sysctl write into the scenario's outcomes (the
    write is faked here: nothing touches /proc)."""
    import netns.sysctl

    def refused(key, value):
        raise OSError(22, f"writing {value!r} to {key}: Invalid argument")

    monkeypatch.setattr(netns.sysctl, "write", refused)
    steps = (ListenStep(1, "listen(a, 1)", None, "a", 1), ListenStep(2, "listen(a, 2)", None, "a", 2))
    job = Job((("net.core.somaxconn", "5"),), 0, steps, injects=True)
    outcomes, dirt = _run_job(KernelExecutor({}, _NoInjector), job)
    assert outcomes[0].value.startswith("HARNESS_ERROR(@sysctl: OSError: [Errno 22] writing '5' to "
                                        "net.core.somaxconn: Invalid argument"), outcomes[0]
    assert outcomes[1] is NOT_RUN and dirt == ""


def test_a_sysctl_write_in_the_hosts_namespace_still_stops_the_worker():
    """HostSysctlRefused is the environment's problem (the worker is not in its namespace),
    never one scenario's: it propagates."""
    from netns.sysctl import HostSysctlRefused

    job = Job((("net.core.somaxconn", "5"),), 0, (ListenStep(1, "listen(a, 1)", None, "a", 1),),
              injects=True)
    with pytest.raises(HostSysctlRefused):
        _run_job(KernelExecutor({}, _NoInjector), job)


def test_a_harness_error_names_where_it_came_from():
    try:
        {}["x"]
    except KeyError as e:
        o = harness_error(e, "sweep: ")
    assert o.value.startswith("HARNESS_ERROR(sweep: KeyError: 'x' at test_hostile_values.py:")
