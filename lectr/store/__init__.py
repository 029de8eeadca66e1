"""The only package that speaks SQL: schema migrations, keys, request logs, summaries,
the jobs' tables and the dashboard's reads.
"""
