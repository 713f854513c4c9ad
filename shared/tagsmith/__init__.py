"""Tagsmith: custom few-shot auto-tagging for digital asset libraries."""

__version__ = "0.1.0"
