"""The demo: synthetic French data (identities, beneficiary files, invoices), the builders
that load it through the same use cases as production, the demo accounts of the portals,
and a local stand-in for Pro Santé Connect. Nothing in production imports it."""
