"""Credit guards: admission at flow start, pausing and resuming schedules, workflow webhooks and
their queue, per-workflow budget caps (README.md). ``Engine.guard`` is the one ``Guard`` of an
engine; ``Workflow`` calls ``admission.admit_run`` at the start of every flow run. Importing
this package imports neither Prefect nor FastAPI."""
