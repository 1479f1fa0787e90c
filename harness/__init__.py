"""skimbench's core: specs, registry, stages, trials, tracking, orchestration, accounting, reports."""

__version__ = "0.1.0"
