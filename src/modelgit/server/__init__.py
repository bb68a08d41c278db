"""``modelgit serve``: the HTTP face of the registry (FastAPI), on the same library as the CLI
(``pip install 'modelgit[server]'``).

- :mod:`modelgit.server.app` — :func:`~modelgit.server.app.create_app` (imports FastAPI);
- :mod:`modelgit.server.context` — :class:`~modelgit.server.context.ServerContext`, the state every
  router shares (``request.app.state.context``);
- :mod:`modelgit.server.routes` — the API (``/api/model-versions/…``, ``/api/models``, usage);
- :mod:`modelgit.server.dashboard` — the dashboard (``/``, ``/models/{id}``, Jinja2 templates);
- :mod:`modelgit.server.feed` — the snapshot feed for replicas (``/api/snapshot``, ``/api/artifacts``);
- :mod:`modelgit.server.tokens` — bearer tokens (no FastAPI: ``modelgit token create`` uses it);
- :mod:`modelgit.server.limits`, :mod:`modelgit.server.auth` — body size, rate, scopes.

This package's ``__init__`` imports nothing, so importing a light submodule stays light.
"""
