"""tierspayant: a third-party payment platform for French complementary health insurers."""

__version__ = "0.1.0"
