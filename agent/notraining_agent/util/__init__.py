"""Small leaf helpers any package may import: atomic writes, the retry policy, the clock."""
