"""Adapters: one module per technology. Only the composition root picks them."""
