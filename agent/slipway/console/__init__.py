"""The web console's parts that know no HTTP: sessions and their CSRF tokens
(``sessions.py``), the Jinja2 templates and how they render (``pages.py``), and the
static files (``static/``, with pinned vendored scripts under ``static/vendor/``).
Its routes are in ``api/console/``: every HTTP route lives under ``api/``."""
