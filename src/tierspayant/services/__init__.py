"""Use cases. Each one authorises, guards, calls the domain, audits and commits, in order."""
