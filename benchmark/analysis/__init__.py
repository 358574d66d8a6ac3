"""From stored run records to results: statistics, typed rows, and the tables built from them."""
