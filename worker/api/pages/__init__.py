"""The dashboard page `roi-worker api` serves at `/` and `/patterns/{pattern_id}` (docs/api.md,
"The dashboard page").

Server-rendered with Jinja2 (worker/api/templates/) from the same models as the JSON endpoints,
so every figure on the page is the API's string; our own script (worker/api/static/) draws the
charts with Plotly, sorts and filters the table, and swaps in fresh sections when the live
stream says the figures changed. No build step and no CDN: every script and style the page
loads is served by the API itself (`assets.py`), Plotly's from the installed `plotly` package.

`views.py` the pages and their sections, `assets.py` the static files, `live.py` the live
stream, `formatting.py` the template filters (string manipulation only: no figure is computed
here).
"""
