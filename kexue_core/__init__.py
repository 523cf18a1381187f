"""kexue_core: tested implementations of the methods derived in the book.

Modules are grouped by subject (``attention``, ``information``, ``nn``, ``gradients``, ...), never by
chapter. Importing the package is cheap: it does not import matplotlib or any chapter.
"""
__version__ = "0.1.0"
