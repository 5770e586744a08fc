"""`deployer demo`: a workspace, a fleet, traffic and a scripted stream of merges."""
