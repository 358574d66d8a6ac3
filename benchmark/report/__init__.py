"""Rendering results for readers: the static site, its plots, and the Hub dataset."""
