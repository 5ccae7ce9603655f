"""``einderiv serve``: a local web page for deriving and inspecting (docs/web.md).

The layer above ``tools``: it imports the engine (api, tools, matrix, numeric, core,
errors) and nothing below imports it; the command line imports it only when
``einderiv serve`` runs. ``compute`` answers one request, ``heatmap`` gives the
page's numbers, ``pool`` runs requests in worker processes with a time budget, and
``server`` is the HTTP side (the standard library's ThreadingHTTPServer).
"""

from .server import make_server, serve

__all__ = ["make_server", "serve"]
