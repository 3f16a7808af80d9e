"""The command line: ``tierspayant …``."""
