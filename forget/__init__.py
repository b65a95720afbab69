"""Forgetting a user: one operation over every store that holds them, and the audit that checks
nothing is left. Sits above memory, pipelines and ranking (it reaches into each) and below
serving and the CLI (DELETE /v1/users/{id} and `engram forget` call it); nothing below imports
it."""
