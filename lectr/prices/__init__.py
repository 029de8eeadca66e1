"""Prices and model families, from genai-prices' data and the user's price file.

Read by three processes: the proxy (warning about a rule's unknown target model), the writer
(cost of each request) and the jobs (cheaper models for recommendations).
"""
