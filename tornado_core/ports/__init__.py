"""Small abstract interfaces the core depends on; adapters implement them."""
