"""Readers and writers of files: streaming, memory does not grow with file size."""
