"""tap-loyalty-store: the loyalty store's models (named SQL queries) as Singer streams."""
