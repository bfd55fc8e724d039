"""Infer a kernel's profile from what it does: for each profile field the scenarios whose
outcome depends on it (the plan, model only), their outcomes on the running kernel (the
observations), and the combination of known field values under which the model fits them all.

The hash formula (`ehash_lport_outside`) is decided by calibration: only the kernel's own
inet_ehashfn finds a secret that reproduces its reuseport picks (harness/calibrate.py). Every
other field is a true/false rule; the search starts from each release profile and flips one
field at a time while more scenarios fit (a coordinate descent: fields interact, e.g. the bhash2
regression fields matter only with bhash2), and keeps the best fit, nearest version first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare import compare
from harness.model_backend import ModelExecutor
from harness.scenario import Scenario, Version, version_text
from harness.spec import same_rules
from model.outcome import Outcome
from model.profiles import RELEASE_PROFILES, Profile

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "scenarios"
CACHE = ROOT / ".cache" / "probe"
# A fixed hash secret for the model-only plan: reuseport picks are then exact, so a field that
# changes a pick shows (the same as the kernels matrix's `exercised`).
PLAN_SECRET = 0x1234ABCD
PER_BASE = 2  # deciding scenarios kept per field and starting profile (shortest first)
NOT_SEARCHED = ("name", "version", "sysctls", "ehash_lport_outside")


def fields() -> list[str]:
    """The true/false fields the search flips: "name" or "bind.name"."""
    out = []
    for f in dataclasses.fields(Profile):
        if f.name in NOT_SEARCHED:
            continue
        if f.name == "bind":
            out += [f"bind.{g.name}" for g in dataclasses.fields(RELEASE_PROFILES[0].bind)]
        else:
            out.append(f.name)
    return out


def get(profile: Profile, name: str) -> bool:
    owner, _, leaf = name.rpartition(".")
    return getattr(profile.bind if owner else profile, leaf)


def put(profile: Profile, name: str, value: bool) -> Profile:
    owner, _, leaf = name.rpartition(".")
    if owner:
        return dataclasses.replace(profile, bind=dataclasses.replace(profile.bind, **{leaf: value}))
    return dataclasses.replace(profile, **{name: value})


def _key(profile: Profile) -> Profile:
    return dataclasses.replace(profile, name="", version=(0, 0))


def inputs_digest(paths: Iterable[Path]) -> str:
    """What a model-only computation depends on: the model's and the harness's sources and
    these files."""
    digest = hashlib.sha256()
    sources = sorted([*(ROOT / "model").glob("*.py"), *(ROOT / "harness").glob("*.py")])
    for path in [*sources, *sorted(paths)]:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _values(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.value}|{o.choice}" for o in outcomes]


def plan(scenarios: list[Scenario], bases: Iterable[Profile] = RELEASE_PROFILES,
         progress: Callable[[str], None] | None = None) -> dict[str, list[str]]:
    """Field -> paths of scenarios whose model outcome changes when that one field flips, in
    any of the `bases` (PER_BASE each, the shortest scenarios first). Model only."""
    order = sorted(scenarios, key=lambda s: (len(s.steps), str(s.path)))
    memo: dict[tuple[Profile, Path], list[str]] = {}

    def outcome(p: Profile, s: Scenario) -> list[str]:
        k = (_key(p), s.path)
        if k not in memo:
            memo[k] = _values(ModelExecutor(p, 0, PLAN_SECRET).run(s))
        return memo[k]

    out: dict[str, list[str]] = {}
    unique = list({_key(b): b for b in bases}.values())
    for name in fields():
        found: list[str] = []
        for base in unique:
            flipped = put(base, name, not get(base, name))
            mine = 0
            for s in order:
                if mine >= PER_BASE:
                    break
                if base.unsupported(k for k, _ in s.sysctls):
                    continue
                if outcome(base, s) != outcome(flipped, s):
                    mine += 1
                    if str(s.path) not in found:
                        found.append(str(s.path))
        out[name] = found
        if progress:
            progress(f"plan: {name}: {len(found)} scenario(s)")
    return out


def cached_plan(scenarios: list[Scenario], progress: Callable[[str], None] | None = None
                ) -> dict[str, list[str]]:
    """plan() of the corpus, cached under .cache/probe by the digest of its inputs (kept in
    memory only where the project is read-only, as in a guest)."""
    path = CACHE / f"plan-{inputs_digest(Path(s.path) for s in scenarios)}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = plan(scenarios, progress=progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
    except OSError:
        pass
    return result


@dataclass
class Observation:
    """One scenario's outcomes on the kernel, with the namespace's hash secret then and the
    kernel's inet6_ehashfn of its IPv6 flows (model.lookup.Hashes6)."""

    scenario: Scenario
    kernel: list[Outcome]
    secret: int | None
    hashes6: dict = field(default_factory=dict)


@dataclass
class FieldVerdict:
    name: str
    value: bool
    decided_by: str = ""  # a scenario that fits with this value and not with the other
    note: str = ""


@dataclass
class Inference:
    """The profile that fits the observations best, field by field."""

    profile: Profile
    start: str  # the release profile the search started from
    verdicts: list[FieldVerdict] = field(default_factory=list)
    unfit: list[Observation] = field(default_factory=list)  # scenarios no combination fits
    twin: str = ""  # a release profile with exactly these rules
    ehash_note: str = ""
    observations: list[Observation] = field(default_factory=list, repr=False)

    @property
    def fits(self) -> bool:
        return not self.unfit


def fits(profile: Profile, ob: Observation) -> bool:
    """Does the model under `profile`, following the kernel's random picks, give the kernel's
    outcomes on every step?"""
    model = ModelExecutor(profile, 0, ob.secret, ob.hashes6).run(ob.scenario, [o.choice for o in ob.kernel])
    return compare(ob.scenario, model, ob.kernel, None).agreed


class _Scorer:
    """Which observations a profile fits, memoized by its rules."""

    def __init__(self, observations: list[Observation]):
        self.observations = observations
        self.memo: dict[Profile, frozenset[int]] = {}

    def __call__(self, profile: Profile) -> frozenset[int]:
        k = _key(profile)
        if k not in self.memo:
            self.memo[k] = frozenset(i for i, ob in enumerate(self.observations)
                                     if not profile.unsupported(kk for kk, _ in ob.scenario.sysctls)
                                     and fits(profile, ob))
        return self.memo[k]


def _descend(start: Profile, score: _Scorer) -> tuple[Profile, frozenset[int]]:
    p, best = start, score(start)
    improved = True
    while improved:
        improved = False
        for name in fields():
            q = put(p, name, not get(p, name))
            got = score(q)
            if len(got) > len(best):
                p, best, improved = q, got, True
    return p, best


def _moot(profile: Profile, name: str, observations: list[Observation]) -> bool:
    """Does flipping the field change no model outcome of any observed scenario (the kernel's
    picks followed)? Then no observation can tell its value (bhash2 fields without bhash2)."""
    other = put(profile, name, not get(profile, name))
    for ob in observations:
        choices = [o.choice for o in ob.kernel]
        mine = ModelExecutor(profile, 0, ob.secret, ob.hashes6).run(ob.scenario, choices)
        theirs = ModelExecutor(other, 0, ob.secret, ob.hashes6).run(ob.scenario, choices)
        if _values(mine) != _values(theirs) or [o.one_of for o in mine] != [o.one_of for o in theirs]:
            return False
    return True


def infer(observations: list[Observation], version: Version, lport_outside: bool,
          withheld: Iterable[Profile] = ()) -> Inference:
    """The best-fitting profile for a kernel of `version`; `withheld` profiles (and those with
    the same rules) are not starting points, to show the search recovers them."""
    hidden = list(withheld)
    starts = [p for p in RELEASE_PROFILES if not any(same_rules(p, h) for h in hidden)]
    starts = list({_key(p): p for p in sorted(
        starts, key=lambda p: abs((p.version[0] - version[0]) * 100 + p.version[1] - version[1]))}.values())
    score = _Scorer(observations)
    results = []
    for rank, start in enumerate(starts):
        p = dataclasses.replace(start, ehash_lport_outside=lport_outside)
        final, got = _descend(p, score)
        results.append((len(got), -rank, final, got, start))
    n, _, final, got, start = max(results, key=lambda r: r[:2])
    name = f"{version_text(version)}-inferred"
    profile = dataclasses.replace(final, name=name, version=version)
    inf = Inference(profile, start.name)
    inf.unfit = [ob for i, ob in enumerate(observations) if i not in got]
    for fname in fields():
        value = get(final, fname)
        other = score(put(final, fname, not value))
        decided = sorted(got - other)
        if decided:
            inf.verdicts.append(FieldVerdict(fname, value, str(observations[decided[0]].scenario.path)))
        elif _moot(final, fname, observations):
            inf.verdicts.append(FieldVerdict(fname, value, note=f"moot: under these rules no probe "
                                             f"scenario's outcome depends on it; kept from {start.name}"))
        else:
            inf.verdicts.append(FieldVerdict(fname, value, note=f"undecided: the kernel's outcomes "
                                             f"fit either value; kept from {start.name}"))
    twins = [r for r in RELEASE_PROFILES if same_rules(profile, r)]
    inf.twin = max(twins, key=lambda r: r.version).name if twins else ""
    return inf


def scenarios_of(plan_: dict[str, list[str]], corpus: list[Scenario]) -> list[Scenario]:
    """The scenarios a plan names, in corpus order."""
    wanted = {p for paths in plan_.values() for p in paths}
    return [s for s in corpus if str(s.path) in wanted]


def to_json(inf: Inference, plan_: dict[str, list[str]]) -> dict:
    return {
        "profile": inf.profile.name, "start": inf.start, "twin": inf.twin, "fits": inf.fits,
        "ehash_lport_outside": inf.profile.ehash_lport_outside, "ehash_note": inf.ehash_note,
        "fields": {v.name: {"value": v.value, "decided_by": v.decided_by, "note": v.note,
                            "scenarios": len(plan_.get(v.name, []))} for v in inf.verdicts},
        "unfit": [str(ob.scenario.path) for ob in inf.unfit],
    }


def observations_json(observations: list[Observation]) -> list[dict]:
    """The kernel's outcomes as recorded (tests/data/probe/): enough to infer again offline."""
    return [{"path": _rel(str(ob.scenario.path)), "secret": ob.secret,
             "outcomes": [[o.value, o.choice] for o in ob.kernel],
             **({"hashes6": [[str(la), lp, str(fa), fp, h] for (la, lp, fa, fp), h in ob.hashes6.items()]}
                if ob.hashes6 else {})} for ob in observations]


def observations_from_json(items: list[dict]) -> list[Observation]:
    from harness.parser import parse_file

    return [Observation(parse_file(ROOT / it["path"]), [Outcome(v, choice=c) for v, c in it["outcomes"]],
                        it["secret"], {(ipaddress.ip_address(la), lp, ipaddress.ip_address(fa), fp): h
                                       for la, lp, fa, fp, h in it.get("hashes6", ())})
            for it in items]


def profile_from_json(data: dict, base: Profile) -> Profile:
    """An inferred profile saved by to_json, rebuilt on `base`'s fields."""
    p = dataclasses.replace(base, name=data["profile"],
                            ehash_lport_outside=data["ehash_lport_outside"])
    for name, v in data["fields"].items():
        p = put(p, name, v["value"])
    version = tuple(int(x) for x in data["profile"].split("-")[0].split("."))
    return dataclasses.replace(p, version=version)


def hash_formula(pool) -> tuple[bool | None, str]:
    """ehash_lport_outside as the kernel has it: the formula under which calibration finds
    exactly one secret (None, and why, when neither or both do)."""
    new, old = pool.hash_secret(True), pool.hash_secret(False)
    if (new.secret is None) != (old.secret is None):
        return new.secret is not None, ("calibration: one secret fits " +
                                        ("lport + jhash_3words (6.15+)" if new.secret is not None
                                         else "jhash_3words(.., lport << 16 | fport) (before 6.15)"))
    return None, f"calibration decided nothing: 6.15+ {new.problem or 'fits'}; older {old.problem or 'fits'}"


def observe(pool, scenarios: list[Scenario], lport_outside: bool,
            progress: Callable[[str], None] | None = None) -> list[Observation]:
    """Each scenario on the kernel (pool: harness.worker.Pool), one at a time, with the secret
    of the namespace it ran in (a replaced namespace has a new one)."""
    import os

    cpus = os.cpu_count() or 1
    out = []
    for i, sc in enumerate(scenarios, start=1):
        if sc.cpu is not None and sc.cpu >= cpus:
            continue
        secret = pool.hash_secret(lport_outside).secret
        generation = pool.generation
        pool.submit(sc)
        kernel = pool.collect(sc)
        if pool.generation != generation:
            secret = pool.hash_secret(lport_outside).secret
        out.append(Observation(sc, kernel, secret, pool.last_hashes6))
        if progress and (i % 10 == 0 or i == len(scenarios)):
            progress(f"observed {i}/{len(scenarios)} scenarios")
    return out


def _rel(path: str) -> str:
    p = Path(path)
    return str(p.relative_to(ROOT)) if p.is_absolute() and p.is_relative_to(ROOT) else path


def report_lines(inf: Inference, plan_: dict[str, list[str]]) -> list[str]:
    """The inferred profile as `profiles --probe` prints it."""
    lines = [f"inferred profile {inf.profile.name} (search from {inf.start}"
             + (f"; the same rules as {inf.twin}" if inf.twin else "; no known profile has these rules")
             + ")",
             f"  ehash_lport_outside={inf.profile.ehash_lport_outside}  ({inf.ehash_note})"]
    for v in inf.verdicts:
        why = f"decided by {_rel(v.decided_by)}" if v.decided_by else v.note
        lines.append(f"  {v.name}={v.value}  ({why}; {len(plan_.get(v.name, []))} probe scenario(s))")
    if inf.unfit:
        lines.append(f"NEW BEHAVIOUR: no combination of known field values fits {len(inf.unfit)} "
                     "scenario(s):")
        lines += [f"  {_rel(str(ob.scenario.path))}" for ob in inf.unfit]
    return lines


def probe_running(version: Version, withheld: list[Profile], say: Callable[[str], None]
                  ) -> tuple[Inference | None, dict[str, list[str]], str]:
    """The whole probe on the running kernel (root): plan, observations, inference; None and
    why when the hash formula could not be told."""
    from harness.runner import load
    from harness.worker import Pool

    corpus = load([CORPUS])
    plan_ = cached_plan(corpus, say)
    scenarios = scenarios_of(plan_, corpus)
    say(f"probe: {len(scenarios)} scenario(s) decide {sum(bool(v) for v in plan_.values())} of "
        f"{len(plan_)} fields")
    with Pool() as pool:
        lport_outside, ehash_note = hash_formula(pool)
        if lport_outside is None:
            return None, plan_, ehash_note
        observations = observe(pool, scenarios, lport_outside, say)
    inf = infer(observations, version, lport_outside, withheld)
    inf.ehash_note = ehash_note
    inf.observations = observations
    return inf, plan_, ""


def _inferred_path(release: str) -> Path:
    return CACHE / f"inferred-{release}-{inputs_digest([])}.json"


def save_inferred(release: str, inf: Inference, plan_: dict[str, list[str]]) -> None:
    """Keep an inferred profile for later runs on this kernel (not where the project is
    read-only, as in a guest: there each run infers again)."""
    try:
        _inferred_path(release).parent.mkdir(parents=True, exist_ok=True)
        _inferred_path(release).write_text(json.dumps(to_json(inf, plan_), indent=1) + "\n")
    except OSError:
        pass
    _MEMORY[release] = inf.profile


_MEMORY: dict[str, Profile] = {}


def load_inferred(release: str) -> tuple[Profile, dict] | None:
    """The profile inferred for this kernel by an earlier probe (same model), if any."""
    if release in _MEMORY:
        return _MEMORY[release], {}
    path = _inferred_path(release)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return profile_from_json(data, RELEASE_PROFILES[0]), data
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged file: as if none were kept (the next probe rewrites it)
