"""The same autoencoder served by the frameworks a user would pick instead (bench/peers.py measures them).

Each module here runs in that framework's own virtual environment, which bench/peers.py creates
from `requirements/<framework>.txt`; none of their dependencies enters the project's. They import
only torch, numpy, safetensors, their framework, and the project's `models` package (the
repository is on PYTHONPATH), through `bench.peer_servers.common`.
"""
