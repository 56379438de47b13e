"""Airflow-facing half of airloop, laid out like an Airflow provider package.

Nothing heavy is imported at module level here: DAG files import these modules at parse time.
"""
