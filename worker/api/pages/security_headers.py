"""The headers of every page and static file: a Content-Security-Policy that lets the page
run only the API's own scripts and styles and talk only to the API, and the usual hardening.

No inline script or style is allowed ('self' only): the page's settings travel in data-
attributes of <body>, read by worker/api/static/dashboard.js. Plotly sets styles through the
DOM (CSSOM), which the policy does not restrict.
"""

from __future__ import annotations

from typing import Final

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
