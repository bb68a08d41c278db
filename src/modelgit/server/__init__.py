"""modelgit's HTTP face: the API and the dashboard (``pip install 'modelgit[server]'``)."""
