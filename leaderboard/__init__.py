"""Templates and assets of the static leaderboard site (package data, read with `importlib.resources`)."""
