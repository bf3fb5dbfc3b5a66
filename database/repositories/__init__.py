"""Repositories: the only place other packages touch the database.

Functions take a SQLAlchemy ``Session`` (or ``Connection``); the caller owns the transaction.
"""
