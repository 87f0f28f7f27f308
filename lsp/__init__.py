"""The remask language server (``remask lsp``): inline completion and "Refine selection" in
any LSP editor, over the HTTP API through the SDK (:mod:`client`). No model runs here.

:mod:`lsp.positions` converts LSP positions (UTF-16 code units by default) to Python
offsets and back; :mod:`lsp.settings` reads the options; :mod:`lsp.server` is the server.
"""
