"""The symbolic engine: from text to simplified derivatives, in index notation.

``syntax`` (lexer and parser, ``parse_wrt``), ``einstein`` (the summation rule, index
checks), ``diff`` (one derivative rule per node type), ``identities`` (the ML
functions' identities, a table), ``terms``, ``simplify`` (the rules by node type),
``naming`` (readable dummy names), ``pipeline`` (the passes derive_steps shows).
Imports errors and core only.
"""
