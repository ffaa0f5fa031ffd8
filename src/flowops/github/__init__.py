"""GitHub: what an Actions event calls for (events), the one comment on a pull request, and running the workflows
offline with act."""
