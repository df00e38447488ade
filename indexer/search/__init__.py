"""The query half of the indexer: text and photo search over the index with paging and
re-ranking (``searcher``), cutoffs that say which results match (``relevance``), filters
(``filters``), people's verdicts on tags and the rules every view follows (``feedback``), and
patch maps of why a tag was given (``evidence``)."""
