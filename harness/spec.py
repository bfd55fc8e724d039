"""Which recorded expectations apply under a profile: the kernel version whose `= …` values
and version clauses the model and the kernel are checked against."""

from __future__ import annotations

import dataclasses

from harness.scenario import Version, version_text
from model.profiles import RELEASE_PROFILES, UNBOOTED, Profile

# the profiles of kernels whose outcomes the corpus records (booted here)
RECORDED = tuple(p for p in RELEASE_PROFILES if p.name not in UNBOOTED)


def same_rules(a: Profile, b: Profile) -> bool:
    """Do two profiles model the same kernel behaviour (names and versions aside)?"""
    return dataclasses.replace(a, name=b.name, version=b.version) == b


def spec_for(profile: Profile) -> tuple[Version | None, str]:
    """The version whose expectations hold under `profile`, and a note when that is not the
    profile's own: a profile of a recorded kernel checks that kernel's; one with the same rules
    as a recorded kernel (an inferred profile) checks that kernel's; a profile whose version
    has a profile of its own (a `--set` variant) checks that version's; one with no such kernel
    (the bhash2 windows, a profile from source, an inferred profile no recorded kernel shares)
    checks none."""
    known = {p.version: p for p in RECORDED}
    own = known.get(profile.version)
    if own is not None and same_rules(profile, own):
        return profile.version, ""
    twins = [p for p in RECORDED if same_rules(profile, p)]
    if twins:
        twin = max(twins, key=lambda p: p.version)
        return twin.version, (f"expectations of {version_text(twin.version)}, whose profile has "
                              f"the same rules as {profile.name}")
    if own is not None:
        return profile.version, ""
    return None, (f"no recorded kernel has the rules of profile {profile.name}: its expectations "
                  "are left out (model against kernel only)")

