"""Hosts as containers on one or more Docker engines; the only code that imports the docker SDK."""
