"""Shared helpers for the fine-tuning scripts: data readers, preprocessing and metrics per task family."""
