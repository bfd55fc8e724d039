"""The one error of the kernel side's surroundings: it cannot run here (not root, no network
namespaces, a namespace worker died). Its own module so that what reports it (the command line,
the runner) need not load the kernel side to name it."""


class EnvironmentProblem(RuntimeError):
    """The kernel side cannot run here (not root, no netns, a worker died)."""
