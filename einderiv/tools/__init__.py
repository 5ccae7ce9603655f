"""Tools built on the public API: step-by-step derivations (``steps``), structure
reports of derivatives (``inspect``), pictures (``plot``), finite-difference checks
(``check``). May import every layer below, the api included.
"""
