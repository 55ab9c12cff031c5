"""Offline training: data, recipes, the loop, publishing checkpoints."""
