"""Infrastructure that every layer uses: atomic file writes, checked weight files, progress lines
and the distributed context. It imports nothing else of zeroseg but ``errors``.
"""
