"""The Prefect pipeline's logic: ledger, inbox watching, archive sweep, artifacts.

The flows in ``flows/`` are thin wrappers around these modules; nothing here is needed by the
engine, which knows nothing about Prefect.
"""
