"""Administration: the `lectr` command, and the files it and the dashboard edit
(rules, secrets), and the HAProxy configuration for several workers.
"""
