"""Pure rules of French complementary tiers payant: no I/O, no clock, no framework."""
