"""gonogo: a release playbook as enforced, recorded gates."""

__version__ = "0.1.0"
