"""Changing the server: the plan (what would change), the deploy with its lock and undo, prune, teardown, gc, and a
pull request's sample runs, with their reports for a terminal and for GitHub."""
