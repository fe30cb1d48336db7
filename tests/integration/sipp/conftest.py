"""The SIPp peer's fixtures (tests/peers/sipp.py) for the tests of this folder."""

from tests.peers.sipp import sip_ami, sip_asterisk, sipp

__all__ = ["sip_ami", "sip_asterisk", "sipp"]
