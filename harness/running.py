"""The profile of the kernel this process runs on: the one its version names, else the profile
inferred for it by `sockharness profiles --probe` (harness/probe.py), else the nearest older
one; with a note whenever it is not the kernel's own."""

from __future__ import annotations

import os
import platform

from harness import probe
from model.profiles import Profile, parse_release, profile_for_release


def running_profile() -> tuple[Profile, str]:
    """The running kernel's profile and, when it is not that kernel's own, why this one."""
    release = platform.release()
    profile, note = profile_for_release(release)
    if not note:
        return profile, ""
    found = probe.load_inferred(release)
    if found is not None:
        inferred, data = found
        twin = data.get("twin") if data else ""
        return inferred, (f"no profile of its own for {release}: using the profile inferred by "
                          "`sockharness profiles --probe`" + (f" (the rules of {twin})" if twin else
                                                             " (rules no known profile has)"))
    return profile, (f"no profile for {release} and none inferred yet (`sudo sockharness "
                     f"profiles --probe`); using the nearest older one, {profile.name}")


def ensure_inferred(say=print) -> None:
    """On a kernel without a profile of its own, as root: infer one now if none is kept."""
    release = platform.release()
    if not profile_for_release(release)[1] or probe.load_inferred(release) is not None:
        return
    if os.geteuid() != 0:
        return
    say(f"no profile for {release}: inferring one (sockharness profiles --probe)")
    inf, plan, why = probe.probe_running(parse_release(release), [], say)
    if inf is None:
        say(f"not inferred: {why}")
        return
    for line in probe.report_lines(inf, plan):
        say(line)
    if inf.fits:
        probe.save_inferred(release, inf, plan)


if __name__ == "__main__":  # `make test`: say which profile the kernel runs under
    ensure_inferred()
    chosen, why = running_profile()
    print(f"kernel {platform.release()}: profile {chosen.name}" + (f" ({why})" if why else ""))
