import core  # noqa: F401  (first: it sets the OpenMP threads' policy before torch or FAISS load)
