"""Small services the lab runs as processes of their own (``python -m lab.services.X``),
started through lab/runtime/gateway.py: the metadata agent and the metadata server."""
