"""Persistence: typed SQLAlchemy 2.0 models, engine/session helpers and repositories.

Other packages read and write through the repositories in ``database.repositories``;
they never write SQL of their own.
"""
