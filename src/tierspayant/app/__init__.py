"""The application shell: the platform object of one process, its caches and the wiring of
the guard and the alerts from the settings. Use cases (``services/``) receive it; it knows
no use case."""
