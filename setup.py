"""Build of the one C extension (flts_streams/_wire.c); everything else is declared in setup.cfg."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("flts_streams._wire", ["flts_streams/_wire.c"], extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
