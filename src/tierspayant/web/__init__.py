"""The portals: server-rendered pages in French (Jinja2 + htmx)."""
