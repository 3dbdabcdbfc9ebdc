"""Deployments the guard stops and resumes."""
