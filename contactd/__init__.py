"""contactd: a self-hosted contact-center server that drives Asterisk over AMI."""

__version__ = "0.1.0"
