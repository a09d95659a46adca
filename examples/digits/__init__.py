"""Handwritten-digit classification on scikit-learn's bundled digits set."""
