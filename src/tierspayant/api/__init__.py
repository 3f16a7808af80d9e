"""The HTTP API: parse, authenticate, call one use case, render."""
