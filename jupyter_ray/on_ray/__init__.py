"""The Ray backend: the same notebooks, magics and sidebar on a real Ray cluster.

``backend`` switches a process to Ray and delegates the facade's calls; ``records`` maps
Ray's state records onto this project's schema; ``output`` routes Ray's worker output to
notebook cells; ``local_head`` starts and stops a Ray head on this machine by pid (for
tests and benchmarks). Nothing here imports Ray until a process asks for the Ray backend.
"""
