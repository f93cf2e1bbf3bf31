"""Segment export jobs on Spark and Delta Lake."""
