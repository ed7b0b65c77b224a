"""Prices as data (``prices.toml``), the pure estimate, mode intents, and quotes with balances."""
