"""Build of the one C extension (flts_streams/serving/_native_body.c); everything else is declared in setup.cfg."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "flts_streams.serving._native_body",
            ["flts_streams/serving/_native_body.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
