"""Benchmarks of rpcbd against raw-socket floors and python-lsp-jsonrpc.

Run ``python -m benchmarks.run --help``; see ``benchmarks/README.md``.
"""
