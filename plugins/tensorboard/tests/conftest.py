"""The testing kit's fixtures (``ember_venv``) for these tests."""

pytest_plugins = ["ember.hub.testing"]
