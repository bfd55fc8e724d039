#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# sockharness: the kernel's bind/listen/SO_REUSEPORT behaviour against a reference model, as a
# kselftest. Runs `sockharness run --ktap` (KTAP version 1 on stdout) on SOCKHARNESS_SCENARIOS
# (paths, relative ones to the project; default: the whole corpus) with the project's
# virtualenv; arguments are passed on (e.g. KSELFTEST_SOCKHARNESS_SH_ARGS="--no-minimize").
#
# Exit codes are kselftest's: 0 every scenario agrees, 1 a divergence or an error (sockharness's
# own 2, a usage or environment error, becomes 1: kselftest.h's KSFT_XFAIL is 2), 4 skipped
# (not root, or no project or virtualenv found), with the reason as a KTAP SKIP result.

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

# set by `make kselftest KSFT_INSTALL=DIR` in the copy it installs
default_dir=

skip() {
	echo "KTAP version 1"
	echo "1..1"
	echo "ok 1 sockharness # SKIP $*"
	echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"
	exit $KSFT_SKIP
}

if [ "$(id -u)" -ne 0 ]; then
	skip "needs root: the scenarios run in network namespaces (and TUN devices) it creates"
fi

here=$(dirname "$(readlink -f "$0")")
dir=${SOCKHARNESS_DIR:-${default_dir:-$(readlink -f "$here/../../../..")}}
if [ ! -f "$dir/harness/cli.py" ]; then
	skip "no sockharness project at $dir (set SOCKHARNESS_DIR)"
fi
python="$dir/.venv/bin/python"
if [ ! -x "$python" ]; then
	skip "no virtualenv at $dir/.venv (run make install in $dir)"
fi
cd "$dir" || skip "cannot enter $dir"

# In the background, so a SIGTERM (kselftest's timeout) or SIGINT reaches sockharness, which
# then removes its namespaces and ends its KTAP document; a shell would wait for it first.
# shellcheck disable=SC2086 # SOCKHARNESS_SCENARIOS is a list of paths
"$python" -m harness run --ktap -q ${SOCKHARNESS_SCENARIOS:-tests/scenarios} "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM
trap 'kill -INT $pid 2>/dev/null' INT
wait $pid
rc=$?
while kill -0 $pid 2>/dev/null; do  # the wait was cut short by a trapped signal
	wait $pid
	rc=$?
done

case $rc in
0)
	exit $KSFT_PASS ;;
1)
	exit $KSFT_FAIL ;;
2)
	echo "# sockharness exited 2 (a usage or environment error, above): reported as a failure"
	exit $KSFT_FAIL ;;
*)
	echo "# sockharness exited $rc"
	exit $KSFT_FAIL ;;
esac
