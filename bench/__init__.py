"""`make bench`: our Singer stages against the tools a user would pick instead."""
