"""The multi-kernel runner's pure parts: initramfs, module order, kernel layout, the matrix."""

from __future__ import annotations

import gzip
import json
import lzma
import shlex
import time
from pathlib import Path

import pytest

from harness.guests import fetch, initramfs, matrix, qemu
from harness.html_report import matrix_page
from model.profiles import PROFILES


def _ko(path: Path, name: str, depends: str, xz: bool = False) -> None:
    blob = b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0name=" + name.encode() + b"\0"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(blob) if xz else blob)


def _cpio_entries(data: bytes) -> dict[str, bytes]:
    raw, at, out = gzip.decompress(data), 0, {}
    while True:
        assert raw[at:at + 6] == b"070701"
        size, namesize = int(raw[at + 54:at + 62], 16), int(raw[at + 94:at + 102], 16)
        name = raw[at + 110:at + 110 + namesize - 1].decode()
        at += 110 + namesize
        at += -at % 4
        if name == "TRAILER!!!":
            return out
        out[name] = raw[at:at + size]
        at += size
        at += -at % 4


def test_load_order_puts_dependencies_first_and_skips_builtins(tmp_path):
    mods = tmp_path / "lib/modules/9.9.9"
    _ko(mods / "kernel/fs/fuse/virtiofs.ko.xz", "virtiofs", "fuse", xz=True)
    _ko(mods / "kernel/fs/fuse/fuse.ko", "fuse", "")
    _ko(mods / "kernel/drivers/net/tun.ko", "tun", "")
    (mods / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    order = initramfs.load_order(mods, ("virtio_pci", "virtiofs", "tun"))
    assert [m.name for m in order] == ["fuse", "virtiofs", "tun"]
    assert order[1].depends == ("fuse",)
    assert order[1].data().startswith(b"\x7fELF")  # decompressed for busybox insmod


def test_missing_module_is_named(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(FileNotFoundError, match="module tun"):
        initramfs.load_order(tmp_path / "m", ("tun",))


def test_initramfs_is_a_newc_archive_with_init_busybox_and_ordered_modules(tmp_path):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"BB")
    _ko(tmp_path / "m/a.ko", "a", "")
    archive = _cpio_entries(initramfs.build(busybox, initramfs.load_order(tmp_path / "m", ("a",)), "#!x\n"))
    assert archive["init"] == b"#!x\n" and archive["bin/busybox"] == b"BB"
    assert list(k for k in archive if k.startswith("modules/")) == ["modules/00-a.ko"]


def test_init_script_mounts_host_read_only_and_binds_only_the_results_writable():
    script = qemu.init_script("echo hi", [Path("/r/out")], {"A": "1"})
    assert "mount -o remount,bind,ro /newroot" in script
    # from the second export, which holds exactly the writable folders (harness/guests/export.py)
    assert f"mount -t virtiofs {qemu.RW_TAG} /rw" in script
    assert "mount --bind /rw/0 /newroot/r/out" in script and "/host/r/out" not in script
    # the writable bind comes after the guest's own tmpfs mounts, so none hides it
    assert script.index("mount -t tmpfs") < script.index("/newroot/r/out")
    assert "A=1 /bin/sh -c 'echo hi'" in script and qemu.EXIT_MARK in script


@pytest.mark.parametrize("layout", ["boot", "usr"])
def test_locate_finds_image_and_modules_in_both_debian_layouts(tmp_path, layout):
    if layout == "boot":
        (tmp_path / "lib/modules/5.10.0-46-cloud-amd64").mkdir(parents=True)
        (tmp_path / "boot").mkdir()
        (tmp_path / "boot/vmlinuz-5.10.0-46-cloud-amd64").write_bytes(b"k")
    else:  # sid: linux-binary puts the image beside the modules
        (tmp_path / "usr/lib/modules/7.2.13+deb14-cloud-amd64").mkdir(parents=True)
        (tmp_path / "usr/lib/modules/7.2.13+deb14-cloud-amd64/vmlinuz").write_bytes(b"k")
    guest = fetch.locate(tmp_path)
    assert guest.vmlinuz.read_bytes() == b"k" and guest.moddir.name == guest.release


def test_private_apt_root_never_names_host_state(tmp_path):
    apt = fetch.AptRoot(tmp_path / "apt", fetch.KERNELS[0])
    text = " ".join(apt.options)
    assert "/etc/apt" not in text and "Dir::State::Status=/dev/null" in text
    assert (tmp_path / "apt/sources.list").read_text().startswith("deb http://deb.debian.org/debian bullseye main")


def _corpus(tmp_path: Path, agreed: bool, skipped: str | None = None) -> Path:
    step = {"line": 3, "call": "bind(a, 10.0.0.1:80)", "expect": "0",
            "model": {"value": "0"}, "kernel": {"value": "EADDRINUSE"}, "checks": ["exact"],
            "problems": [] if agreed else ["model 0 != kernel EADDRINUSE"]}
    data = {"profile": "x", "scenarios": [
        {"path": "s/a.scn", "feature": "bind", "skipped": skipped, "agreed": agreed, "steps": [step]}]}
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps(data))
    return path


def test_matrix_cells_and_reports(tmp_path):
    bad, _ = matrix.cells_from_json(_corpus(tmp_path, agreed=False))
    assert bad["s/a.scn"].status is matrix.Status.DIVERGE
    assert "model 0, kernel EADDRINUSE" in bad["s/a.scn"].detail
    good, _ = matrix.cells_from_json(_corpus(tmp_path, agreed=True))
    cols = [matrix.Column("5.10", "5.10.0-46", "5.10", 12, cells=bad),
            matrix.Column("6.1", "6.1.0-56", "6.1", 10, cells=good),
            matrix.Column("7.2", problem="timed out after 900 s")]
    md = matrix.markdown(cols, full=False)
    assert "| s/a.scn | diverge | agree | not run |" in md
    assert "7.2: timed out" in md and "on 5.10: line 3" in md
    page = matrix_page(cols, "t")
    assert page.count('<tr data-row="bad">') == 1 and "diverge" in page


def test_flips_name_each_differing_field():
    names = [n for n, _ in matrix._flips(PROFILES["6.12"], PROFILES["6.18"])]
    assert "connect_bind_reset" in names
    assert not {"name", "version", "ehash_lport_outside"} & set(names)  # the formula: see _NOT_FLIPPED


class _Pool:
    last_seconds = 0.0
    last_retransmits = 0


@pytest.mark.parametrize("seconds,verb,expected", [(8.0, "syn_only", True), (0.3, "syn_only", False),
                                                   (8.0, "bind", False)])
def test_request_timer_is_blamed_only_for_long_runs_with_requests(seconds, verb, expected):
    from types import SimpleNamespace

    from harness.runner import Backend, Runner

    pool = _Pool()
    pool.last_seconds = seconds
    runner = Runner(PROFILES["6.18"], Backend.BOTH, 0, pool)
    scenario = SimpleNamespace(steps=[SimpleNamespace(verb=verb)])
    assert runner._outlived_request_timer(scenario) is expected


def test_exercised_names_the_scenarios_a_field_decides():
    from harness.parser import parse_file

    root = Path(__file__).parents[1] / "scenarios"
    scenarios = [parse_file(root / "versions/fastreuse-first-owner-reuseaddr.scn"),
                 parse_file(root / "groups/008-incoming-cpu-some.scn"),
                 parse_file(root / "errors/eaddrnotavail.scn")]
    found = matrix.exercised(PROFILES["5.10"], PROFILES["6.18"], scenarios)
    names = {k: [Path(p).name for p in v] for k, v in found.items()}
    assert names["bind.fastreuse_tests_owners"] == ["fastreuse-first-owner-reuseaddr.scn"]
    assert names["reuseport_incoming_cpu"] == ["008-incoming-cpu-some.scn"]
    assert names["network_address_broadcast"] == ["eaddrnotavail.scn"]
    assert names["migrate_req"] == []


# --- a kernel given by path (--kernel PATH [--modules DIR]) -------------------------------------

def _bzimage(path: Path, version: str = "6.12.9-own (me@box) #1 SMP PREEMPT") -> Path:
    """A file with a bzImage setup header whose kernel_version field points at `version`."""
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x800 - 0x200).to_bytes(2, "little")
    data[0x800:0x800 + len(version) + 1] = version.encode() + b"\0"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def test_bzimage_release_is_read_from_the_setup_header(tmp_path):
    assert fetch.bzimage_release(_bzimage(tmp_path / "bzImage")) == "6.12.9-own"
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF" + bytes(0x1000))
    with pytest.raises(ValueError, match="not a bzImage"):
        fetch.bzimage_release(tmp_path / "vmlinux")


def _build_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    _bzimage(tree / "arch/x86/boot/bzImage")
    (tree / "include/config").mkdir(parents=True)
    (tree / "include/config/kernel.release").write_text("6.13.0-rc1-00042-gdeadbeef\n")
    (tree / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/fuse/fuse.ko\n"
                                          "kernel/fs/fuse/virtiofs.ko\nkernel/net/ipv4/inet_diag.ko\n")
    _ko(tree / "drivers/net/tun.ko", "tun", "")
    _ko(tree / "net/ipv4/tcp_diag.ko", "tcp_diag", "inet_diag")
    _ko(tree / ".git/stale/tun.ko", "tun", "bogus")  # not searched
    (tree / "drivers/net/.tun.ko.cmd").write_text("cmd\n")  # kbuild's, not a module
    return tree


def test_a_build_tree_gives_its_bzimage_release_and_built_modules(tmp_path):
    tree = _build_tree(tmp_path)
    guest = fetch.own_kernel(tree)
    assert guest.vmlinuz == tree / "arch/x86/boot/bzImage" and guest.moddir == tree
    assert guest.release == "6.13.0-rc1-00042-gdeadbeef" and guest.missing_ok
    order, missing = initramfs.plan(guest.moddir)
    assert [(m.name, m.path) for m in order] == [("tun", tree / "drivers/net/tun.ko"),
                                                 ("tcp_diag", tree / "net/ipv4/tcp_diag.ko")]
    assert missing == []
    (tree / "include/config/kernel.release").unlink()  # then the image's header says it
    assert fetch.own_kernel(tree).release == "6.12.9-own"


def test_a_build_tree_without_bzimage_cannot_boot(tmp_path):
    (tmp_path / "linux").mkdir()
    with pytest.raises(FileNotFoundError, match="arch/x86/boot/bzImage"):
        fetch.own_kernel(tmp_path / "linux")


def test_an_image_takes_its_release_from_the_modules_dir_else_its_header(tmp_path):
    image = _bzimage(tmp_path / "boot/vmlinuz")
    mods = tmp_path / "root/lib/modules/6.12.118+deb13-cloud-amd64"
    (mods / "kernel").mkdir(parents=True)
    assert fetch.own_kernel(image, mods).release == "6.12.118+deb13-cloud-amd64"
    # the root modules_install wrote into is taken for the tree below it
    assert fetch.own_kernel(image, tmp_path / "root").moddir == mods
    bare = fetch.own_kernel(image)
    assert bare.release == "6.12.9-own" and bare.moddir is None
    # no modules at all: everything the guest wants must be built in, so all are reported
    assert initramfs.plan(None) == ([], list(initramfs.WANTED))


def test_own_kernel_profile_is_an_exact_version_match_only(tmp_path):
    from harness.guests import command as run

    image = _bzimage(tmp_path / "a/vmlinuz", "6.12.9-own")
    assert run.own_target(image, None).profile == "6.12"
    image = _bzimage(tmp_path / "b/vmlinuz", "6.13.0-rc1")
    target = run.own_target(image, None)
    assert target.profile is None and target.name == "6.13.0-rc1"
    assert "--profile" not in run.guest_command(tmp_path / "out", None, ())


# --- exit statuses for `git bisect run` (the boot mocked) ----------------------------------------

@pytest.fixture
def fake_kernels(tmp_path, monkeypatch):
    """run.main with nothing fetched or booted: the guest's corpus result is `booted["corpus"]`
    (agree / diverge / None for none), its BootResult reason `booted["reason"]`."""
    from harness.guests import command as run

    booted: dict = {"corpus": "agree", "reason": "", "commands": []}

    def boot(tools, guest, command, *, writable, log, readonly=(), **kw):
        booted["commands"].append(command)
        booted["readonly"] = readonly
        if booted["corpus"] is not None:
            root = writable[0]
            (root / "corpus.json").write_text(_corpus(tmp_path, booted["corpus"] == "agree").read_text())
        return qemu.BootResult(0 if booted["corpus"] else None, 1.0, log, booted["reason"])

    monkeypatch.setattr(run, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(run.reap, "reap_stale", lambda: [])
    monkeypatch.setattr(run.fetch, "fetch_tools", lambda cache, say: cache)
    monkeypatch.setattr(run.qemu, "find_tools", lambda cache: qemu.Tools(Path("q"), Path("v"), Path("b")))
    monkeypatch.setattr(run, "choose_accel", lambda tools, guest, out: (qemu.Accel.TCG, "test"))
    monkeypatch.setattr(run.qemu, "boot", boot)
    monkeypatch.setattr(run, "load", lambda paths: [])
    monkeypatch.setattr(run, "_exercised", lambda profile, scenarios: {})
    return run, booted


def _args(tmp_path: Path, kernel: Path, modules: Path | None = None):
    import argparse

    return argparse.Namespace(kernel=str(kernel), modules=str(modules) if modules else None,
                              versions=None, out=str(tmp_path / "out dir"), jobs=None, cpus=None,
                              kernel_tests=[], host=False, timeout=60)


@pytest.mark.parametrize("corpus,reason,expected", [
    ("agree", "", 0), ("diverge", "", 1),
    (None, "timed out after 60 s", 125),
    (None, "not found inside the guest: /tmp/co/.venv/bin/python3", 125),
])
def test_exit_status_of_a_kernel_given_by_path(tmp_path, fake_kernels, capsys, corpus, reason, expected):
    run, booted = fake_kernels
    booted.update(corpus=corpus, reason=reason)
    code = run.main(_args(tmp_path, _build_tree(tmp_path)))
    assert code == expected
    assert (run.EXIT_AGREE, run.EXIT_DIVERGE, run.EXIT_UNTESTABLE) == (0, 1, 125)
    printed = capsys.readouterr().out
    assert "6.13.0-rc1-00042-gdeadbeef" in printed  # the column is named after the release
    if reason:
        assert reason in printed  # the column's problem, as the guest said it
    # the results folder (with a space) reaches the guest quoted
    assert shlex.quote(str(tmp_path / "out dir" / "6.13.0-rc1-00042-gdeadbeef")) in booted["commands"][0]


def test_a_module_found_nowhere_is_one_line_and_untestable(tmp_path, fake_kernels, capsys):
    run, booted = fake_kernels
    code = run.main(_args(tmp_path, _bzimage(tmp_path / "vmlinuz")))  # bare: no modules
    assert code == run.EXIT_UNTESTABLE and booted["commands"]  # booted all the same
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "modules not found" in ln]
    assert len(lines) == 1 and "tun, inet_diag, tcp_diag" in lines[0]


def test_a_build_tree_without_bzimage_is_untestable_without_a_boot(tmp_path, fake_kernels):
    run, booted = fake_kernels
    (tmp_path / "linux").mkdir()
    assert run.main(_args(tmp_path, tmp_path / "linux")) == run.EXIT_UNTESTABLE
    assert booted["commands"] == []


# --- any checkout location ----------------------------------------------------------------------

def test_paths_under_the_guests_tmpfs_are_bound_back_after_it_and_quoted():
    script = qemu.init_script("true", [Path("/tmp/my co/reports/k/6.12"), Path("/work/out")], {},
                              readonly=[Path("/tmp/my co"), Path("/tmp/my co/.venv"), Path("/usr")])
    ro = "mount --bind '/host/tmp/my co' '/newroot/tmp/my co' && mount -o remount,bind,ro '/newroot/tmp/my co'"
    assert ro in script and script.count("remount,bind,ro") == 2  # / and the project, once
    assert "/newroot/usr" not in script  # not under a guest tmpfs: the read-only root has it
    rw = "mount --bind /rw/1 '/newroot/tmp/my co/reports/k/6.12'"  # /work/out is the outer: 0
    # tmpfs, then the project read-only, then the results writable on top of it
    assert script.index("mount -t tmpfs") < script.index(ro) < script.index(rw)
    assert "mount --bind /rw/0 /newroot/work/out" in script


def test_a_missing_project_is_one_line_the_host_reports(tmp_path):
    import subprocess

    from harness.guests import command as run

    command = qemu.guarded("echo ran", [tmp_path, tmp_path / "no such/python3"])
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert proc.returncode == 127 and proc.stdout == f"{qemu.MISSING_MARK}{tmp_path}/no such/python3\n"
    # as the console carries it: the boot's reason, which becomes the column's problem
    fake = subprocess.Popen(["sh", "-c", command + f"; echo {qemu.EXIT_MARK}$?"], stdout=subprocess.PIPE)
    result = qemu._follow(fake, tmp_path / "console.log", time.monotonic(), 30, None)
    fake.wait()
    assert result.reason == f"not found inside the guest: {tmp_path}/no such/python3"
    assert run.guest_command(Path("/tmp/a b/out"), "6.12", ("t x.py",)).count("'/tmp/a b/out'") == 1


def test_modules_found_nowhere_are_probed_in_the_guest_and_built_in_ones_are_fine(tmp_path, fake_kernels,
                                                                                 monkeypatch, capsys):
    run, booted = fake_kernels
    real = run.qemu.boot

    def boot(*a, **kw):  # the guest's /init found them all in /proc/kallsyms
        result = real(*a, **kw)
        return qemu.BootResult(result.exit_code, result.seconds, result.log, result.reason,
                               initramfs.WANTED)

    monkeypatch.setattr(run.qemu, "boot", boot)
    assert run.main(_args(tmp_path, _bzimage(tmp_path / "vmlinuz"))) == run.EXIT_AGREE
    assert "built in after all" in capsys.readouterr().out


def test_init_probes_the_modules_asked_about_after_the_root_is_mounted():
    script = qemu.init_script("true", [], {}, probe=["virtiofs", "tun"])
    assert f"echo {qemu.BUILTIN_MARK}virtiofs" in script.replace("'", "")  # the mount proves it
    probe = f"grep -q ' [tT] tun_[^[]*$' /proc/kallsyms && echo '{qemu.BUILTIN_MARK}tun'"
    assert probe in script and script.index("mount -t virtiofs") < script.index(probe)


def test_scenarios_reach_the_guest_as_project_paths(tmp_path):
    from harness.guests import command as run

    assert run.corpus_paths(["tests/scenarios/ebpf", str(run.ROOT / "tests/scenarios/lookup")]) == (
        "tests/scenarios/ebpf", "tests/scenarios/lookup")
    with pytest.raises(ValueError, match="no such file"):
        run.corpus_paths(["tests/scenarios/nope"])
    with pytest.raises(ValueError, match="not inside the project"):
        run.corpus_paths([str(tmp_path)])
    line = run.guest_command(tmp_path / "out", "6.12", (), ("tests/scenarios/ebpf",), probe=False)
    assert line.count("--corpus tests/scenarios/ebpf") == 1 and "--no-probe" in line


def test_a_soak_in_each_guest_is_asked_for_reported_and_fails_the_matrix(tmp_path):
    from harness.guests import command as run

    line = run.guest_command(tmp_path / "out", "6.12", (), ("tests/scenarios/lookup",), probe=False, soak=100000)
    assert line.count(" --soak 100000") == 1
    assert " --soak" not in run.guest_command(tmp_path / "out", "6.12", ())
    good, _ = matrix.cells_from_json(_corpus(tmp_path, agreed=True))
    passed = matrix.Column("6.1", cells=good, soak="soak passed: 100012 SYNs injected in 40 scenarios; ...")
    failed = matrix.Column("7.2", cells=good, soak="soak FAILED: 100012 SYNs injected; ... 3 divergent")
    assert run.exit_status([passed], None) == run.EXIT_AGREE
    assert run.exit_status([passed, failed], None) == run.EXIT_DIVERGE
    assert "- 7.2: soak FAILED" in matrix.markdown([passed, failed], full=False)
