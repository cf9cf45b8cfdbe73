"""Spark ML stages: thin params/schema layers over the plain-Python engines."""
