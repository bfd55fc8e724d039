"""The multi-kernel runner's pure parts: initramfs, module order, kernel layout, the matrix."""

from __future__ import annotations

import gzip
import json
import lzma
from pathlib import Path

import pytest

from harness.kernels import fetch, initramfs, matrix, qemu
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
    assert "mount --bind /host/r/out /newroot/r/out" in script
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
    page = matrix.html_page(cols, "t")
    assert page.count("<tr>") == 2 and "diverge" in page


def test_flips_name_each_differing_field():
    names = [n for n, _ in matrix._flips(PROFILES["6.12"], PROFILES["6.18"])]
    assert "connect_bind_reset" in names
    assert not {"name", "version", "ehash_lport_outside"} & set(names)  # the formula: see _NOT_FLIPPED


class _Pool:
    last_seconds = 0.0


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
