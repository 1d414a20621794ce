"""Example web app deployed by gonogo: a stand-in for the playbook's production app."""

__version__ = "0.2.10"
