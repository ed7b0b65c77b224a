"""Reusable view pieces for the pages (they call services; services never import them)."""
