"""Scheduled and batch jobs (adjudication, payment and billing runs, checkpoints)."""
