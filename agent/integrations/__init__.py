"""Adapters that let other agent frameworks run their code actions in Corral."""
