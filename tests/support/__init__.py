"""Test doubles that run for real: a local OpenID provider, a software authenticator."""
