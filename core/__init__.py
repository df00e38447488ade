"""The floor every other package stands on. Importing it (each package's ``__init__`` does, before
anything loads torch or FAISS) makes idle OpenMP threads sleep instead of spin.

torch and FAISS each keep an OpenMP thread pool; by default (GNU libgomp) idle threads spin for a
while after every parallel region, so on a machine with few cores a FAISS search leaves threads
spinning that take the CPU from the text tower's next query. Measured on 2 cores, a new text
query on 10^5 photos (``bench.filtered``'s library, in process): p50 159 ms spinning, 29 ms
passive. A value already in the environment wins."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
